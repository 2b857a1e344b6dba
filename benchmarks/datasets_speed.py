"""How fast the label-sanity check streams, what it holds in memory, and how fast FIB/USB build.

Usage: ``python benchmarks/datasets_speed.py [--rows 1000000] [--shards 8]``.
The sanity check reads synthetic Parquet shards (made first by ``batchjudge data synth`` in a
child process, so their cost stays out of this process's memory) batch by batch; peak RSS
growth is measured against the RSS before the check. The FIB and USB builds run when the
reference data sits at ``../shared/data`` and are skipped otherwise.
Writes ``benchmarks/results/datasets_speed.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import psutil

from batchjudge.datasets.fib import build_fib
from batchjudge.datasets.io import iter_dataset_batches
from batchjudge.datasets.sanity import LabelChecker
from batchjudge.datasets.usb import build_usb

RESULTS = Path(__file__).resolve().parent / "results" / "datasets_speed.json"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure_check(rows: int, shards: int) -> dict[str, float | int]:
    """Rows/s and memory of the streaming sanity check over ``rows`` synthetic rows."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "batchjudge", "data", "synth", "--rows", str(rows),
             "--shards", str(shards), "--out", out],
            check=True, capture_output=True,
        )
        paths = sorted(Path(out).glob("part-*.parquet"))
        size = sum(p.stat().st_size for p in paths)
        rss_before = psutil.Process().memory_info().rss / 2**20
        start = time.perf_counter()
        checker = LabelChecker()
        for path in paths:
            for batch in iter_dataset_batches(path):
                checker.update(batch, origin=path.name)
        found = checker.finish()
        seconds = time.perf_counter() - start
    return {
        "rows": checker.rows,
        "parquet_mb": round(size / 1e6, 1),
        "check_s": round(seconds, 2),
        "check_rows_per_s": round(checker.rows / seconds),
        "rss_before_mb": round(rss_before),
        "peak_rss_growth_mb": round(_peak_rss_mb() - rss_before),
        "warnings": [w.code for w in found],
    }


def measure_builds() -> dict[str, float]:
    """Seconds to build FIB (raw xsum) and USB (cookbook copy, repaired) when present."""
    timings: dict[str, float] = {}
    if (DATA / "fib" / "xsum").is_dir():
        start = time.perf_counter()
        build_fib(DATA / "fib" / "xsum")
        timings["fib_xsum_build_s"] = round(time.perf_counter() - start, 2)
    if (DATA / "cookbook").is_dir():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_usb([DATA / "cookbook"])
        timings["usb_build_s"] = round(time.perf_counter() - start, 2)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    check = measure_check(args.rows, args.shards)  # first, so the RSS high-water mark is its own
    builds = measure_builds()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "check": check,
        "builds": builds,
    }, indent=2) + "\n")
    print("| rows checked | Parquet | check time | rows/s | peak RSS growth | FIB build | USB build |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {check['rows']:,} | {check['parquet_mb']} MB | {check['check_s']} s | "
          f"{check['check_rows_per_s']:,} | {check['peak_rss_growth_mb']} MB | "
          f"{builds.get('fib_xsum_build_s', 'n/a')} s | {builds.get('usb_build_s', 'n/a')} s |")


if __name__ == "__main__":
    main()
