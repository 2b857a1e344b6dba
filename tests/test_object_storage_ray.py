"""``--engine ray`` with its inputs and run directory in S3 (moto over real HTTP): no path
needs to exist on the workers' machines, and the results equal the single process's.

One local Ray node here (slow: the run starts Ray); the read tasks carry the input's
filesystem, the driver alone writes the run directory through its lease.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import polars as pl
import pyarrow.parquet as pq
import pytest

from batchjudge.datasets.synth import write_synth
from s3_server import S3Server, _moto_server, s3  # noqa: F401  (fixtures)

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SAME = ["row_id", "status", "verdict", "score", "reason", "raw_response", "error", "attempts", "prompt_tokens",
        "completion_tokens", "model", "target", "truncated_tokens"]
"""Every result column but the latency."""


def results(s3: S3Server, run: str) -> pl.DataFrame:
    tables = [pq.read_table(io.BytesIO(s3.read(key))).replace_schema_metadata(None)
              for key in s3.keys(f"{run}/results/")]
    return pl.concat([pl.from_arrow(t) for t in tables]).select(SAME).sort("row_id")  # type: ignore[misc]


def test_ray_reads_shards_from_s3_and_writes_its_run_there_equal_to_the_single_process(s3, tmp_path):
    write_synth(tmp_path / "data", rows=3000, shards=3, seed=8)
    s3.upload_folder(tmp_path / "data", "shards/")
    env = {**os.environ, "WEAVE_DISABLED": "true", "WANDB_ERROR_REPORTING": "false"}

    def run(out: str, *more: str) -> None:
        done = subprocess.run([sys.executable, "-m", "batchjudge", "run", s3.url("shards/"), "--out", s3.url(out),
                               "--quiet", *more], capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr

    run("runs/ray", "--engine", "ray", "--workers", "2")
    run("runs/single")
    on_ray, single = results(s3, "runs/ray"), results(s3, "runs/single")
    assert on_ray.height == 3000 and on_ray["row_id"].n_unique() == 3000
    assert on_ray.equals(single)
