"""Peak memory against dataset size: the engine's RSS must stay flat from 10k to 1M rows.

For each size, synthetic rows are written as 8 Parquet shards, then ``batchjudge run`` judges
them in a fresh process (``--provider local`` by default, or a zero-latency ``mock``); the
child's peak RSS is read from ``getrusage(RUSAGE_CHILDREN)`` after it exits.

    python benchmarks/scale_memory.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

MOCK_CHILD = r"""
import sys, batchjudge
from batchjudge import JudgeReply, MockProvider, RunConfig
provider = MockProvider(lambda r: JudgeReply('{"consistency": 1, "reason": "ok"}', completion_tokens=9), record=False)
result = batchjudge.run(RunConfig(inputs=[sys.argv[1]], out=sys.argv[2]), provider=provider)
sys.exit(result.exit_code)
"""


def measure(data: Path, out: Path, provider: str) -> dict[str, float]:
    """Run one child to completion; return its wall time and peak RSS (MiB)."""
    if provider == "mock":
        cmd = [sys.executable, "-c", MOCK_CHILD, str(data), str(out)]
    else:
        cmd = [sys.executable, "-m", "batchjudge", "run", str(data), "--out", str(out), "--provider", provider, "--quiet"]
    script = (
        "import resource, subprocess, sys, json, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.call(sys.argv[1:])\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'rc': rc, 'wall_s': time.perf_counter() - t, 'peak_rss_mib': rss}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"run failed with exit code {result['rc']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--provider", choices=["local", "mock"], default="local")
    args = parser.parse_args()
    from batchjudge.datasets.synth import write_synth

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            data = Path(tmp) / f"data-{size}"
            write_synth(data, rows=size, shards=8, seed=5)
            result = measure(data, Path(tmp) / f"run-{size}", args.provider)
            rows.append({"rows": size, **{k: round(v, 1) for k, v in result.items() if k != "rc"},
                         "rows_per_s": round(size / result["wall_s"], 1)})
            print(json.dumps(rows[-1]), flush=True)
    report = {
        "benchmark": "scale_memory",
        "provider": args.provider,
        "date": time.strftime("%Y-%m-%d"),
        "runs": rows,
        "peak_rss_ratio_largest_to_smallest": round(rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"], 3),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"scale_memory_{args.provider}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
