"""Scale-out on a local Ray: the local judge's rows/s and the API efficiency per worker count.

Two measurements, each against the single-process engine on the same machine:

- **local judge** (CPU-bound): ``batchjudge run --provider local`` on synthetic rows, single
  process vs ``--engine ray --workers 1`` and ``2``. Reported: rows/s over the whole command
  (Ray's start-up included) and the steady rate (rows written between the first and the last
  results part, over the time between them).
- **API efficiency** (rate-limit-bound): ``batchjudge emulator`` in its own process as
  ``throughput.py``'s *known* scenario runs it (a strict per-second window, 300±150 ms latency,
  2% of replies a 500; warmed first), then
  ``--engine ray`` with 1, 2 and 4 workers at 100 and 400 RPS (``--rps`` set to the limit,
  ``--concurrency`` 1.2 × the limit shared by the workers), and the single-process engine as the
  reference. Efficiency = (ok rows / limit) / the server's active time (first request to last
  answer); 429s and Retry-After violations from the emulator's ``/stats``.

Usage::

    python benchmarks/ray_scale.py             # ~15 min on 2 cores; needs pip install -e ".[ray]"
    python benchmarks/ray_scale.py --quick     # local judge only, 20k rows

Writes ``results/ray_scale.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import FAULTS, LATENCY, MODEL, SCENARIOS, emulator, stats, warm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ray_scale.json"


def run(data: Path, out: Path, *extra: str, key: str = "bench") -> float:
    """One ``batchjudge run``; its wall seconds."""
    env = {**os.environ, "MISTRAL_API_KEY": key, "WEAVE_DISABLED": "true", "WANDB_ERROR_REPORTING": "false"}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "batchjudge", "run", str(data), "--out", str(out), "--quiet",
                           *extra], env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall


def steady_rate(out: Path) -> float:
    """Rows written after the first part over the time from the first part to the last."""
    parts = sorted((out / "results").glob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    if len(parts) < 2:
        return float("nan")
    rows = sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in parts[1:])
    return rows / (parts[-1].stat().st_mtime - parts[0].stat().st_mtime)


def local_judge(work: Path, rows: int) -> list[dict[str, Any]]:
    from batchjudge.datasets.synth import write_synth

    data = work / "local-data"
    write_synth(data, rows=rows, shards=8, seed=1)
    outcomes = []
    for label, extra in [("single process", []), ("ray, 1 worker", ["--engine", "ray", "--workers", "1"]),
                         ("ray, 2 workers", ["--engine", "ray", "--workers", "2"])]:
        out = work / f"local-{label.replace(' ', '').replace(',', '-')}"
        wall = run(data, out, "--flush-rows", "2000", *extra)
        outcome = {"engine": label, "rows": rows, "wall_s": round(wall, 2), "rows_per_s": round(rows / wall, 1),
                   "steady_rows_per_s": round(steady_rate(out), 1), "load_average": os.getloadavg()}
        print(orjson.dumps(outcome).decode(), flush=True)
        outcomes.append(outcome)
    return outcomes


def api(work: Path, seconds: float) -> list[dict[str, Any]]:
    from batchjudge.datasets.synth import write_synth
    from batchjudge.emulator.state import key_label

    outcomes = []
    for rps in (100, 400):
        rows = int(rps * seconds)
        data = write_synth(work / f"api-data-{rps}", rows=rows, seed=0)[0]
        with emulator(SCENARIOS["known"], rps) as url:
            warm(url, data, rows)
            for workers in (None, 1, 2, 4):
                label = "single process" if workers is None else f"ray, {workers} worker{'s' * (workers > 1)}"
                key = f"bench-{rps}-{workers}"
                extra = ["--provider", "mistral", "--base-url", url, "--model", MODEL, "--rps", str(rps),
                         "--concurrency", str(int(rps * (0.6 if workers is None else 1.2))), "--timeout", "10"]
                if workers is not None:
                    extra += ["--engine", "ray", "--workers", str(workers)]
                out = work / f"api-{rps}-{workers}"
                wall = run(data, out, *extra, key=key)
                seen = stats(url)["keys"][key_label(key)]
                results = pl.read_parquet(out / "results" / "*.parquet")
                ok = int((results["status"] == "ok").sum())
                active = seen["last_chat_s"] - seen["first_chat_s"]
                outcome = {"engine": label, "limit_rps": rps, "rows": rows, "ok_rows": ok,
                           "efficiency": round(ok / rps / active, 4), "efficiency_process": round(ok / rps / wall, 4),
                           "rate_limited": seen["rate_limited"], "retry_after_violations": seen["retry_after_violations"],
                           "early_arrivals": seen["early_arrivals"], "wall_s": round(wall, 2),
                           "load_average": os.getloadavg()}
                print(orjson.dumps(outcome).decode(), flush=True)
                outcomes.append(outcome)
    return outcomes


def table(local: list[dict[str, Any]], calls: list[dict[str, Any]]) -> str:
    lines = ["| local judge | rows | rows/s (whole command) | steady rows/s |", "|---|---|---|---|"]
    lines += [f"| {o['engine']} | {o['rows']} | {o['rows_per_s']} | {o['steady_rows_per_s']} |" for o in local]
    if calls:
        lines += ["", "| API | limit | rows ok | efficiency (active) | efficiency (whole command) | 429s | Retry-After violations (early arrivals) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {o['engine']} | {o['limit_rps']} RPS | {o['ok_rows']}/{o['rows']} | {o['efficiency']:.1%} "
                  f"| {o['efficiency_process']:.1%} | {o['rate_limited']} | {o['retry_after_violations']} ({o['early_arrivals']}) |"
                  for o in calls]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the local judge only, 20k rows")
    parser.add_argument("--rows", type=int, default=60_000, help="local judge rows")
    parser.add_argument("--seconds", type=float, default=20.0, help="API workload: seconds at the limit")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bj-ray-"))
    started = os.getloadavg()
    try:
        local = local_judge(work, 20_000 if args.quick else args.rows)
        calls = [] if args.quick else api(work, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"benchmark": "ray_scale", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                     "platform": platform.platform(), "load_average_at_start": started,
                                                     "load_average_at_end": os.getloadavg()},
              "latency_ms": LATENCY, "faults": FAULTS, "local_judge": local, "api": calls}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(table(local, calls))


if __name__ == "__main__":
    main()
