"""How many (document, summary) pairs per second the local judge scores on one core.

Usage: ``python benchmarks/local_judge_speed.py [--rows 16000]``.
Three cases on synthetic rows (documents of ~120-530 words): every document repeated over its
8 consecutive rows (as the synthetic data and FIB are laid out), every pair with a document
seen for the first time (the cache never hits), and documents of 400+ words only, unseen;
then, when ``../shared/data/cookbook`` is present, FIB validation as it comes (real news,
two summaries per document) and with every document new. Rates are per CPU-second of this
one process (``time.process_time``), so other work on the machine does not count.
Writes ``benchmarks/results/local_judge_speed.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import pyarrow as pa

from batchjudge.datasets.synth import ROWS_PER_DOC, synth_batches
from batchjudge.localjudge import LocalJudge

RESULTS = Path(__file__).resolve().parent / "results" / "local_judge_speed.json"
COOKBOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"


def _rate(judge: LocalJudge, pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """(pairs per wall second, pairs per CPU second): the best of three runs."""
    wall = cpu = float("inf")
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        judge.predict_many(pairs)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return len(pairs) / wall, len(pairs) / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16_000)
    args = parser.parse_args()
    table = pa.Table.from_batches(list(synth_batches(args.rows, seed=11)))
    premises = table.column("premise").to_pylist()
    hypotheses = table.column("hypothesis").to_pylist()
    judge = LocalJudge.load()
    judge.predict_many(zip(premises[:800], hypotheses[:800], strict=True))  # warm the stem memo

    repeated = list(zip(premises, hypotheses, strict=True))
    # One row per document, so every premise is new to the cache.
    unseen = repeated[::ROWS_PER_DOC]
    long_docs = [(p, h) for p, h in unseen if len(p.split()) >= 400]
    cases = {
        "repeated documents (8 rows each)": (repeated, _rate(judge, repeated)),
        "every document new": (unseen, _rate(judge, unseen)),
        "every document new, 400+ words": (long_docs, _rate(judge, long_docs)),
    }
    fib = COOKBOOK / "fib-val.jsonl"
    if fib.is_file():
        rows = [json.loads(line) for line in fib.read_text(encoding="utf-8").splitlines()]
        fib_pairs = [(r["premise"], r["hypothesis"]) for r in rows]
        cases["FIB validation (2 summaries per document)"] = (fib_pairs, _rate(judge, fib_pairs))
        fresh = fib_pairs[::2]  # one summary per document: every document new
        cases["FIB validation, every document new"] = (fresh, _rate(judge, fresh))
    results = [
        {
            "case": case,
            "pairs": len(pairs),
            "mean_doc_words": round(sum(len(p.split()) for p, _ in pairs) / len(pairs)),
            "pairs_per_s": round(wall),
            "pairs_per_cpu_s": round(cpu),
            "cpu_us_per_pair": round(1e6 / cpu),
        }
        for case, (pairs, (wall, cpu)) in cases.items()
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    load = os.getloadavg()[0]
    RESULTS.write_text(
        json.dumps({"machine": machine, "load_avg_1m": load, "results": results}, indent=2) + "\n"
    )
    print(f"load average {load:.1f} on {machine}")
    print("| case | pairs | mean doc words | pairs/s (wall) | pairs per CPU-s | CPU µs/pair |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['case']} | {r['pairs']:,} | {r['mean_doc_words']} | {r['pairs_per_s']:,} "
            f"| {r['pairs_per_cpu_s']:,} | {r['cpu_us_per_pair']} |"
        )


if __name__ == "__main__":
    main()
