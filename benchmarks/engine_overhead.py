"""Engine overhead: rows/s through the whole engine with a zero-latency provider on one core.

Everything but the judge is measured: reading Parquet, row keys, prompt rendering, the shared
limits, retry wrapper, parsing, buffering and atomic Parquet parts. Each repeat runs in a fresh
process pinned to one CPU (``os.sched_setaffinity``); the median is reported.

    python benchmarks/engine_overhead.py --rows 50000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

CHILD = r"""
import os, sys, time, json
os.sched_setaffinity(0, {0})
import batchjudge
from batchjudge import JudgeReply, MockProvider, RunConfig
reply = '{"consistency": 1, "reason": "all facts found in the document"}'
provider = MockProvider(lambda r: JudgeReply(reply, prompt_tokens=r.prompt_tokens, completion_tokens=12), record=False)
data, out, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
c0 = time.process_time()
result = batchjudge.run(RunConfig(inputs=[data], out=out, concurrency=concurrency, check_labels=False, flush_rows=5000), provider=provider)
wall = time.perf_counter() - t
print(json.dumps({"rows": result.stats["finished"], "wall_s": wall, "cpu_s": time.process_time() - c0}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    from batchjudge.datasets.synth import write_synth

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_synth(data, rows=args.rows, shards=4, seed=7)
        samples = []
        for i in range(args.repeats):
            out = Path(tmp) / f"run{i}"
            proc = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out), str(args.concurrency)],
                                  check=True, capture_output=True, text=True)
            samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    rates = [s["rows"] / s["wall_s"] for s in samples]
    cpu_ms = [1000 * s["cpu_s"] / s["rows"] for s in samples]
    result = {
        "benchmark": "engine_overhead",
        "rows": args.rows,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "rows_per_s_median": round(statistics.median(rates), 1),
        "rows_per_s_all": [round(r, 1) for r in rates],
        "cpu_ms_per_row_median": round(statistics.median(cpu_ms), 4),
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
