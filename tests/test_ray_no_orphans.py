"""After a ``kill -9`` of a ``--engine ray`` driver, nothing of its run is left on the machine.

The Ray the driver started (GCS, raylet, agents, the judging workers) was seen to outlive it by
minutes; its watcher (:mod:`batchjudge.ray._reaper`) now kills them and removes the cooldown
boards once the driver is gone, whatever killed it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from batchjudge.datasets.synth import write_synth

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ENV = {**os.environ, "WEAVE_DISABLED": "true", "WANDB_ERROR_REPORTING": "false"}
LEFT_AFTER_S = 10.0
"""Issue 30: no process of the run left this long after the driver died."""


def boards() -> set[Path]:
    shm = Path("/dev/shm")
    return set(shm.glob("batchjudge-cooldown-*")) if shm.is_dir() else set()


def test_after_kill_9_of_the_driver_no_ray_process_or_board_of_its_run_is_left_within_ten_seconds(tmp_path):
    write_synth(tmp_path / "data", rows=20_000, shards=4, seed=3)
    run_dir = tmp_path / "run"
    before = boards()
    cmd = [sys.executable, "-m", "batchjudge", "run", str(tmp_path / "data"), "--out", str(run_dir),
           "--engine", "ray", "--workers", "2", "--flush-rows", "500", "--quiet"]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        while driver.poll() is None and len(list((run_dir / "results").glob("part-*.parquet"))) < 2:
            time.sleep(0.05)
        assert driver.poll() is None, "the run ended before the kill: use more rows"
        started = [p for p in psutil.Process(driver.pid).children(recursive=True)]
        workers = [p for p in started if "RayJudgeWorker" in " ".join(p.cmdline())]
        ours = boards() - before  # empty when a board of that name was left before (names repeat by job id)
        assert workers, "no judging worker seen: nothing to check"
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + LEFT_AFTER_S
    left = started
    while time.monotonic() < deadline:
        left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not left and not (boards() & ours):
            break
        time.sleep(0.2)
    assert not left, f"left {LEFT_AFTER_S:.0f} s after the driver died: {[' '.join(p.cmdline())[:80] for p in left]}"
    assert not (boards() & ours), "the run's cooldown boards were not removed"
