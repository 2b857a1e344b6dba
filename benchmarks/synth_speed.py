"""How fast the synthetic generator makes rows: in memory, and written as Parquet shards.

Usage: ``python benchmarks/synth_speed.py [--rows 100000 1000000] [--shards 8]``.
Writes ``benchmarks/results/synth_speed.json`` and prints one markdown table row per size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from batchjudge.datasets.synth import synth_batches, write_synth

RESULTS = Path(__file__).resolve().parent / "results" / "synth_speed.json"


def measure(rows: int, shards: int) -> dict[str, float | int]:
    """Rows/s of generating ``rows`` in memory (one core) and of writing them as shards."""
    start, start_cpu = time.perf_counter(), time.process_time()
    generated = sum(batch.num_rows for batch in synth_batches(rows))
    generate_s = time.perf_counter() - start
    generate_cpu_s = time.process_time() - start_cpu
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        paths = write_synth(out, rows=rows, shards=shards)
        write_s = time.perf_counter() - start
        size = sum(p.stat().st_size for p in paths)
    return {
        "rows": generated,
        "shards": shards,
        "generate_s": round(generate_s, 2),
        "generate_rows_per_s": round(generated / generate_s),
        "generate_cpu_s": round(generate_cpu_s, 2),
        "generate_rows_per_cpu_s": round(generated / generate_cpu_s),
        "write_s": round(write_s, 2),
        "write_rows_per_s": round(rows / write_s),
        "parquet_mb": round(size / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    results = [measure(rows, args.shards) for rows in args.rows]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    load = os.getloadavg()[0]
    RESULTS.write_text(
        json.dumps({"machine": machine, "load_avg_1m": load, "results": results}, indent=2)
        + "\n"
    )
    print(f"load average {load:.1f} on {machine}")
    print("| rows | generate, wall (1 core) | generate, CPU | write, shards | Parquet |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['generate_s']} s ({r['generate_rows_per_s']:,} rows/s) "
            f"| {r['generate_cpu_s']} s ({r['generate_rows_per_cpu_s']:,} rows/CPU-s) "
            f"| {r['write_s']} s ({r['write_rows_per_s']:,} rows/s), {r['shards']} "
            f"| {r['parquet_mb']} MB |"
        )


if __name__ == "__main__":
    main()
