"""``kill -9`` of a driver whose inputs and run directory are in S3, at random points, then
the same command: exactly one result per row, read back from the bucket.

The S3 server (moto over real HTTP) runs in the test, and its hook kills the driver in the
middle of its commits: as the PUT of a part or of ``run.json`` arrives (the request never
stored) or once the store has stored it (the driver never hears back), besides kills at
random moments. Between two kills a second driver is refused while the first holds the run.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from batchjudge.datasets.synth import write_synth
from batchjudge.engine.source import open_source
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server, _moto_server, s3  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KINDS = ("part:before", "part:after", "run.json:before", "run.json:after", "time")


def _killer(s3: S3Server, proc: subprocess.Popen[bytes], kind: str, nth: int, killed: threading.Event) -> None:
    """Arm ``s3``'s hook to kill ``proc`` at the ``nth`` commit of ``kind`` (``part:after``...)."""
    target, phase = kind.split(":")
    needle = "/results/part-" if target == "part" else "/run.json"
    count = 0

    def hook(method: str, path: str, at: str) -> bool:
        nonlocal count
        if killed.is_set() or method != "PUT" or needle not in path or "/runs/r1/" not in path:
            return False
        if at == "before":
            count += 1
        if count == nth and at == phase:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed.set()
            return phase == "before"
        return False

    s3.hook = hook


def _lease_pid(s3: S3Server) -> int | None:
    if "runs/r1/.lease" not in s3.keys("runs/r1/"):
        return None
    return orjson.loads(s3.read("runs/r1/.lease")).get("pid")


def test_kill_9_at_random_points_and_mid_commit_then_resume_gives_exactly_one_result_per_row(s3, tmp_path):
    rows = 30_000
    write_synth(tmp_path / "data", rows=rows, shards=3, seed=21)
    s3.upload_folder(tmp_path / "data", "shards/")
    out = s3.url("runs/r1")
    cmd = [sys.executable, "-m", "batchjudge", "run", s3.url("shards/"), "--out", out, "--provider", "local",
           "--flush-rows", "150", "--flush-seconds", "0.2", "--quiet"]
    seed = int(os.environ.get("BJ_KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    plan = [*KINDS, *KINDS, *(rng.choice(KINDS) for _ in range(2))]
    rng.shuffle(plan)
    done: list[str] = []
    missed: list[str] = []
    screens: list[bytes] = []
    refused = None
    for index, kind in enumerate(plan):
        log = tmp_path / f"round-{index}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=sink)
            killed = threading.Event()
            if refused is None and index == 2:  # a second driver while this one runs (before any kill is armed)
                while proc.poll() is None and _lease_pid(s3) != proc.pid:  # its own, not the last one's
                    time.sleep(0.05)
                if proc.poll() is None:
                    refused = subprocess.run(cmd, capture_output=True, timeout=120)
            if kind == "time":
                timer = threading.Timer(rng.uniform(0.8, 2.5), lambda p=proc: (p.poll() is None and p.kill(), killed.set()))
                timer.start()
            else:
                _killer(s3, proc, kind, rng.randint(1, 3), killed)
            proc.wait(timeout=300)
            if kind == "time":
                timer.cancel()
            s3.hook = None
        screens.append(log.read_bytes())
        if killed.is_set() and proc.returncode == -signal.SIGKILL:
            done.append(kind)
        else:
            missed.append(f"{kind}: exit {proc.returncode}: {screens[-1].decode(errors='replace')[-300:]}")
    assert len(done) >= 10, f"only {len(done)} kills landed ({done}); seed {seed}; the others: {missed}"
    assert {"part:before", "part:after", "run.json:before", "run.json:after"} <= set(done), (done, seed)
    assert refused is not None and refused.returncode == 2, refused
    assert b"another batchjudge run is writing here" in refused.stderr

    final = subprocess.run(cmd, capture_output=True, timeout=300)
    assert final.returncode == 0, final.stderr
    screens += [final.stdout, final.stderr, refused.stdout, refused.stderr]

    expected = sorted(r.row_id for b in open_source([tmp_path / "data"]).batches() for r in b)
    ids: list[str] = []
    for key in s3.keys("runs/r1/results/"):
        ids += pq.read_table(io.BytesIO(s3.read(key)), columns=["row_id"]).column("row_id").to_pylist()
    assert len(ids) == len(set(ids)), "a row has two results"
    assert sorted(ids) == expected, f"rows lost: {len(set(expected) - set(ids))}; seed {seed}"

    status = subprocess.run([sys.executable, "-m", "batchjudge", "status", out, "--json"], capture_output=True)
    assert status.returncode == 0, status.stderr
    assert (orjson.loads(status.stdout)["state"], orjson.loads(status.stdout)["done"]) == ("complete", rows)
    report = subprocess.run([sys.executable, "-m", "batchjudge", "report", out, "--json"], capture_output=True)
    assert report.returncode == 0, report.stderr
    screens += [status.stdout, status.stderr, report.stdout, report.stderr]

    for key in s3.keys("runs/"):
        body = s3.read(key)
        assert ACCESS_KEY.encode() not in body and SECRET_KEY.encode() not in body, key
    for screen in screens:
        assert ACCESS_KEY.encode() not in screen and SECRET_KEY.encode() not in screen
    print(f"seed {seed}: kills {done}; {len(s3.keys('runs/r1/results/'))} parts; {len(ids)} rows checked")
