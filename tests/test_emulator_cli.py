"""``batchjudge emulator``: a real server that announces itself, and clear errors for bad flags."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from emulator_fixtures import batchjudge_cli, cli_command


@contextmanager
def _served(*flags: str) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """``batchjudge emulator FLAGS`` in a child: (banner, url, ``GET /``, its emulator header)."""
    command = [*cli_command(), "emulator", "--port", "0", *flags]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        banner = child.stdout.readline()
        url = re.search(r"(http://\S+)", banner).group(1)  # type: ignore[union-attr]
        for _ in range(200):
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as response:
                    root = orjson.loads(response.read())
                    marked = response.headers["x-batchjudge-emulator"]
                break
            except OSError:
                time.sleep(0.05)
        yield banner, url, root, marked
    finally:
        child.terminate()
        child.wait(timeout=10)
        child.stdout.close()  # type: ignore[union-attr]


def test_the_command_serves_the_api_and_says_it_is_an_emulator() -> None:
    with _served("--rps", "7", "--latency-ms", "5:1") as (banner, url, root, marked):
        assert "NOT the Mistral API" in banner
        assert root["emulator"] is True and marked == "1"
        assert "rps=7" in root["config"] and "latency=5±1ms" in root["config"]
        with urllib.request.urlopen(url + "/v1/models", timeout=5) as response:
            assert orjson.loads(response.read())["data"]


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


def test_the_limit_header_and_outage_flags_reach_the_served_config() -> None:
    flags = ["--api", "openai", "--rpm", "600", "--tpm", "50000", "--tokens-per-month", "1000000"]
    with _served(*flags, "--headers", "bysize", "--outage", "30:2") as (banner, _, root, _):
        assert "NOT an OpenAI-compatible API" in banner
        config = root["config"]
        for part in ("api=openai", "rpm=600", "tpm=50000", "tokens-per-month=1000000"):
            assert part in config
        assert "headers=bysize" in config and "outage=30s+2s" in config


@pytest.mark.parametrize(
    ("flag", "value", "complaint"),
    [
        ("--outage", "soon", "error: --outage: 'soon' is not AT:FOR"),
        ("--headers", "fancy", "error: --headers: 'fancy' is not one of mistral, second"),
        ("--api", "anthropic", "error: --api: 'anthropic' is not one of mistral, openai"),
        ("--rpm", "0", "error: --rpm must be positive"),
    ],
)
def test_a_bad_limit_or_outage_flag_is_one_clear_error_and_exit_2(
    flag: str, value: str, complaint: str
) -> None:
    done = batchjudge_cli("emulator", "--port", "0", flag, value)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(complaint)
