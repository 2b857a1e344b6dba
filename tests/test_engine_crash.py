"""A real ``kill -9`` of a running ``batchjudge run`` at several points, then the same command.

Every input row must end with exactly one result row: none lost, none duplicated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from batchjudge.datasets.synth import write_synth
from batchjudge.engine.source import open_source


def expected_keys(data: Path) -> list[str]:
    return sorted(row.row_id for batch in open_source([data]).batches() for row in batch)


def parts(run_dir: Path) -> int:
    return len(list((run_dir / "results").glob("part-*.parquet"))) if (run_dir / "results").exists() else 0


def command(data: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "batchjudge", "run", str(data), "--out", str(run_dir), "--provider", "local",
            "--flush-rows", "400", "--flush-seconds", "0.2", "--quiet"]


def kill_after_new_parts(cmd: list[str], run_dir: Path, new_parts: int, deadline_s: float = 60.0) -> bool:
    """Start ``cmd``, SIGKILL it once ``new_parts`` more parts exist; False if it finished first."""
    before = parts(run_dir)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < deadline_s:
        if parts(run_dir) >= before + new_parts:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    proc.wait()
    return False


def test_kill_9_at_several_points_then_resume_gives_exactly_one_result_per_row(tmp_path):
    data = tmp_path / "data"
    write_synth(data, rows=8000, shards=3, seed=11)
    run_dir = tmp_path / "run"
    cmd = command(data, run_dir)
    kills = sum(kill_after_new_parts(cmd, run_dir, n) for n in (1, 3, 2))
    assert kills >= 2, "the run finished before it could be killed: make the dataset larger"
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    results = pl.read_parquet(run_dir / "results" / "*.parquet")
    assert results["row_id"].n_unique() == results.height, "a row has two results"
    assert sorted(results["row_id"].to_list()) == expected_keys(data), "a row has no result"
    assert set(results["status"].unique().to_list()) <= {"ok", "parse_error", "failed"}


@pytest.mark.slow
def test_a_hundred_thousand_rows_in_eight_shards_are_judged_end_to_end(tmp_path):
    data = tmp_path / "data"
    write_synth(data, rows=100_000, shards=8, seed=3)
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "batchjudge", "run", str(data), "--out", str(run_dir), "--quiet"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    results = pl.read_parquet(run_dir / "results" / "*.parquet")
    assert results.height == 100_000 and results["row_id"].n_unique() == 100_000
    assert results.filter(pl.col("status") == "ok").height == 100_000
    accuracy = (results["verdict"] == results["target"]).mean()
    assert accuracy > 0.6
