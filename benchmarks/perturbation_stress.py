"""Stress test: does the local judge see a fact swapped in from elsewhere in the document?

Usage: ``python benchmarks/perturbation_stress.py [--data ../shared/data/cookbook] [--sentences 3]``.

Inconsistent twins (:mod:`batchjudge.datasets.perturb`) are made from FIB *validation*
documents, which no shipped or benchmarked judge trains on, in two ways:

- ``summary``: twins of FIB's consistent reference summaries (abstractive, one sentence);
- ``sentence``: twins of up to ``--sentences`` sentences of each document, FactCC's way
  (the claim is the document's own sentence, so its context is found exactly).

Each judge is scored by pairwise accuracy per kind (the original above its twin, ties
half; 95% interval resampling originals): the shipped default, the same judge with its
reading features switched off (what the judge could see before it read facts in context),
and, when ``fib-train.jsonl`` is present, the default fine-tuned on FIB train from its own
weights. Writes ``benchmarks/results/perturbation_stress.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from batchjudge.datasets.cookbook import load_cookbook
from batchjudge.datasets.perturb import KINDS, perturb_table
from batchjudge.localjudge import FEATURE_NAMES, LocalJudge, train
from batchjudge.core.metrics import pairwise_accuracy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"
RESULTS = Path(__file__).resolve().parent / "results" / "perturbation_stress.json"
READING = ("contradicted_facts", "misplaced_facts", "fact_support", "local_support", "late_mention")
"""The features that read each fact where its context is."""


def _without_reading(judge: LocalJudge) -> LocalJudge:
    coef = tuple(0.0 if name in READING else c for name, c in zip(FEATURE_NAMES, judge.coef, strict=True))
    return replace(judge, name=f"{judge.name} (reading off)", coef=coef)


def _scores(judge: LocalJudge, table: pa.Table) -> list[float]:
    pairs = zip(table.column("premise").to_pylist(), table.column("hypothesis").to_pylist(), strict=True)
    return [j.score for j in judge.predict_many(pairs)]


def _by_kind(table: pa.Table, scores: list[float], claim: str | None) -> dict[str, Any]:
    """Pairwise accuracy (with its interval) per kind, over the claims of one origin."""
    rows = [i for i, c in enumerate(table.column("claim").to_pylist()) if claim is None or c == claim]
    kinds = [table.column("kind")[i].as_py() for i in rows]
    pair_ids = [table.column("pair_id")[i].as_py() for i in rows]
    targets = [table.column("target")[i].as_py() for i in rows]
    out: dict[str, Any] = {}
    for kind in (*KINDS, "all"):
        keep = [j for j, k in enumerate(kinds) if kind == "all" or k in ("consistent", kind)]
        result = pairwise_accuracy([pair_ids[j] for j in keep], [targets[j] for j in keep],
                                   [scores[rows[j]] for j in keep], resamples=1000, seed=0)  # fmt: skip
        if result.value is not None:
            interval = None if result.interval is None else [round(result.interval.low, 3), round(result.interval.high, 3)]
            out[kind] = {"pairwise": round(result.value, 3), "pairs": result.pairs, "interval": interval}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sentences", type=int, default=3)
    args = parser.parse_args()
    val = args.data / "fib-val.jsonl"
    if not val.is_file():
        raise SystemExit(f"{val} not present: this benchmark needs FIB validation")
    started = time.perf_counter()
    table = perturb_table(load_cookbook(val), seed=0, sentences=args.sentences)
    default = LocalJudge.load()
    judges = [default, _without_reading(default)]
    train_file = args.data / "fib-train.jsonl"
    if train_file.is_file():
        fib = load_cookbook(train_file)
        judges.append(train(fib.column("premise").to_pylist(), fib.column("hypothesis").to_pylist(),
                            fib.column("target").to_pylist(), name="fine-tuned on FIB train", prior=default))  # fmt: skip
    results: list[dict[str, Any]] = []
    for judge in judges:
        scores = _scores(judge, table)
        results.append({"judge": judge.name, **{claim or "all": _by_kind(table, scores, claim)
                                                for claim in ("summary", "sentence", None)}})  # fmt: skip
    load = os.getloadavg()
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_avg_1m_5m_15m": [round(v, 2) for v in load],
        "rows": table.num_rows, "sentences_per_document": args.sentences,
        "wall_s": round(time.perf_counter() - started, 1), "results": results,
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{table.num_rows} rows; load average {load[0]:.1f}")
    print("| judge | claims | " + " | ".join(KINDS) + " | all |")
    print("|---|---|" + "---|" * (len(KINDS) + 1))
    for result in results:
        for claim in ("summary", "sentence"):
            cells = [
                f"{c['pairwise']:.3f} ({c['pairs']})" if (c := result[claim].get(kind)) else "–"
                for kind in (*KINDS, "all")
            ]  # fmt: skip
            print(f"| {result['judge']} | {claim} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
