"""``batchjudge emulator``: a real server that announces itself, and clear errors for bad flags."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request

import orjson
from emulator_fixtures import batchjudge_cli, cli_command


def test_the_command_serves_the_api_and_says_it_is_an_emulator() -> None:
    child = subprocess.Popen(
        [*cli_command(), "emulator", "--port", "0", "--rps", "7", "--latency-ms", "5:1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        banner = child.stdout.readline()
        assert "NOT the Mistral API" in banner
        url = re.search(r"(http://\S+)", banner).group(1)  # type: ignore[union-attr]
        for _ in range(200):
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as response:
                    root = orjson.loads(response.read())
                    marked = response.headers["x-batchjudge-emulator"]
                break
            except OSError:
                time.sleep(0.05)
        assert root["emulator"] is True and marked == "1"
        assert "rps=7" in root["config"] and "latency=5±1ms" in root["config"]
        with urllib.request.urlopen(url + "/v1/models", timeout=5) as response:
            assert orjson.loads(response.read())["data"]
    finally:
        child.terminate()
        child.wait(timeout=10)
        child.stdout.close()  # type: ignore[union-attr]


def test_a_bad_fault_spec_is_one_clear_error_and_exit_2() -> None:
    done = batchjudge_cli("emulator", "--port", "0", "--faults", "500:2")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --faults: probability of 500 must be in [0, 1]"
    ]


def test_a_bad_latency_is_one_clear_error_and_exit_2() -> None:
    done = batchjudge_cli("emulator", "--port", "0", "--latency-ms", "soon")
    assert done.returncode == 2
    assert "--latency-ms" in done.stderr
