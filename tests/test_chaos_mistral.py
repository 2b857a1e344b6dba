"""Chaos: ``kill -9`` the CLI at random moments of a faulty run against the emulator, resume,
repeat; the results must be exactly-once and their verdicts those of a clean run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from emulator_fixtures import (  # noqa: F401  (emulator is a fixture)
    TEST_KEY,
    StartEmulator,
    batchjudge_cli,
    cli_command,
    emulator,
)

from batchjudge.emulator import EmulatorServer

FAULTS = "500:0.05,503:0.02,drop:0.02,slow:0.02,malformed:0.02,nonjson:0.01"


def _command(server: EmulatorServer, data: Path, out: Path) -> list[str]:
    return [
        "run",
        str(data),
        "--out",
        str(out),
        "--provider",
        "mistral",
        "--base-url",
        server.url,
        "--model",
        "open-mistral-7b",
        "--quiet",
        "--concurrency",
        "8",
        "--timeout",
        "1",
        "--max-retries",
        "20",
        "--flush-rows",
        "10",
        "--flush-seconds",
        "0.2",
    ]


def _popen(args: list[str]) -> subprocess.Popen[str]:
    """The CLI as a child we can SIGKILL (the same command line as :func:`batchjudge_cli`)."""
    env = {**os.environ, "MISTRAL_API_KEY": TEST_KEY, "WEAVE_DISABLED": "true"}
    return subprocess.Popen(
        [*cli_command(), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_mid_run(server: EmulatorServer, args: list[str], rng: random.Random, rows: int) -> bool:
    """Start a run and SIGKILL it after a random number of requests; False if it finished."""
    seen = server.stats()["chat_completions"]
    target = seen + rng.randint(3, max(4, rows // 4))
    child = _popen(args)
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        if server.stats()["chat_completions"] >= target:
            child.send_signal(signal.SIGKILL)
            child.communicate()
            return True
        time.sleep(0.005)
    child.communicate()
    return False


def _results(out: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted((out / "results").glob("*.parquet"))])


def _chaos(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path, rows: int, kills: int
) -> None:
    data = write_pairs(rows)
    clean = emulator()
    clean_run = batchjudge_cli(
        *_command(clean, data, tmp_path / "clean"), env={"MISTRAL_API_KEY": TEST_KEY}
    )
    assert clean_run.returncode == 0, clean_run.stderr
    reference = _results(tmp_path / "clean").select("row_id", "verdict")

    faulty = emulator(faults=FAULTS, latency_ms=20, jitter_ms=10, seed=7, slow_s=5.0)
    args = _command(faulty, data, tmp_path / "chaos")
    rng = random.Random(20261127)
    killed = sum(_kill_mid_run(faulty, args, rng, rows) for _ in range(kills))
    assert killed >= 1, "no run was killed mid-way: the test proved nothing"
    final = batchjudge_cli(*args, env={"MISTRAL_API_KEY": TEST_KEY})
    assert final.returncode == 0, final.stderr

    results = _results(tmp_path / "chaos")
    assert results.height == rows  # exactly once: no row lost, none written twice
    assert results["row_id"].n_unique() == rows
    assert set(results["row_id"]) == set(reference["row_id"])
    assert (results["status"] == "ok").all()
    joined = results.join(reference, on="row_id", suffix="_clean")
    assert (joined["verdict"] == joined["verdict_clean"]).all()
    assert faulty.stats()["chat_completions"] >= rows  # at-least-once calls


def test_killed_and_resumed_runs_end_exactly_once_with_clean_verdicts(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    _chaos(emulator, write_pairs, tmp_path, rows=120, kills=2)


@pytest.mark.slow
def test_many_kills_on_a_larger_faulty_run_still_end_exactly_once(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    _chaos(emulator, write_pairs, tmp_path, rows=1500, kills=12)
