"""How well the local judge separates consistent from inconsistent summaries.

Usage: ``python benchmarks/local_judge_quality.py``.
Scores the shipped default weights on unseen synthetic documents, on the project's shipped
sample, and (when ``../shared/data/cookbook`` is present) on FIB validation, next to the
default fine-tuned on FIB train from its own weights (:func:`batchjudge.localjudge.train` with
``prior=``) and a judge refitted on FIB train from zero. Pairwise accuracy pairs the summaries
of one document; ECE is the calibration error (10 bins). Writes
``benchmarks/results/local_judge_quality.json`` and prints a markdown table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from batchjudge.datasets.sample import load_sample
from batchjudge.datasets.synth import synth_batches
from batchjudge.localjudge import LocalJudge, train
from batchjudge.localjudge._train import log_loss
from batchjudge.core.metrics import calibration_bins, pairwise_accuracy, roc_auc

RESULTS = Path(__file__).resolve().parent / "results" / "local_judge_quality.json"
COOKBOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"
Rows = tuple[list[str], list[str], list[int]]


def _columns(table: pa.Table) -> Rows:
    return (
        table.column("premise").to_pylist(),
        table.column("hypothesis").to_pylist(),
        table.column("target").to_pylist(),
    )


def _jsonl(path: Path) -> Rows:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return (
        [r["premise"] for r in rows],
        [r["hypothesis"] for r in rows],
        [r["target"] for r in rows],
    )


def _score(judge: LocalJudge, data: Rows) -> dict[str, float | int | None]:
    premises, hypotheses, targets = data
    judged = judge.predict_many(zip(premises, hypotheses, strict=True))
    y = np.array(targets, dtype=np.float64)
    p = np.array([j.score for j in judged])
    verdicts = np.array([j.verdict for j in judged])
    auc = roc_auc(y, p)
    pairwise = pairwise_accuracy(premises, targets, p, resamples=10).value
    return {
        "rows": len(y),
        "accuracy": round(float(np.mean(verdicts == y)), 3),
        "roc_auc": None if auc is None else round(auc, 3),
        "pairwise": None if pairwise is None else round(pairwise, 3),
        "ece": round(calibration_bins(y, p)[1] or 0.0, 3),
        "log_loss": round(log_loss(y, p), 3),
        "mean_score": round(float(p.mean()), 3),
    }


def _by_kind(judge: LocalJudge, table: pa.Table) -> dict[str, dict[str, float | int]]:
    """The default judge's share of correct verdicts per synthetic error kind."""
    premises, hypotheses, targets = _columns(table)
    judged = judge.predict_many(zip(premises, hypotheses, strict=True))
    correct: dict[str, list[bool]] = {}
    for kind, j, t in zip(table.column("kind").to_pylist(), judged, targets, strict=True):
        correct.setdefault(kind, []).append(j.verdict == t)
    return {
        kind: {"rows": len(hits), "correct": round(sum(hits) / len(hits), 3)}
        for kind, hits in sorted(correct.items())
    }


def main() -> None:
    default = LocalJudge.load()
    # Rows far beyond the 12,000 the default was trained on: documents it never saw.
    unseen = pa.Table.from_batches(list(synth_batches(4000, start=10_000_000)))
    unseen_synth = _columns(unseen)
    cases: list[tuple[str, str, Rows]] = [
        ("default", "synthetic, unseen documents", unseen_synth),
        ("default", "shipped sample (100 rows)", _columns(load_sample())),
    ]
    judges = {"default": default}
    if (COOKBOOK / "fib-val.jsonl").is_file() and (COOKBOOK / "fib-train.jsonl").is_file():
        fib_val = _jsonl(COOKBOOK / "fib-val.jsonl")
        fib_train = _jsonl(COOKBOOK / "fib-train.jsonl")
        judges["fine-tuned on FIB train (from the default)"] = train(*fib_train, name="ft:local-judge:fib", prior=default)
        judges["refitted on FIB train (from zero)"] = train(*fib_train, name="fib-from-zero")
        cases += [(name, "FIB validation", fib_val) for name in judges]
    results = [
        {"judge": name, "data": data, **_score(judges[name], rows)} for name, data, rows in cases
    ]
    by_kind = _by_kind(default, unseen)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    load = [round(v, 2) for v in os.getloadavg()]
    RESULTS.write_text(
        json.dumps({"load_avg_1m_5m_15m": load, "results": results, "synthetic_by_kind": by_kind}, indent=2) + "\n"
    )
    print("| judge | data | rows | accuracy | ROC-AUC | pairwise | ECE | log-loss | mean score |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['judge']} | {r['data']} | {r['rows']} | {r['accuracy']} | {r['roc_auc']} "
            f"| {r['pairwise']} | {r['ece']} | {r['log_loss']} | {r['mean_score']} |"
        )
    print()
    print("| synthetic kind | rows | judged correctly |")
    print("|---|---|---|")
    for kind, r in by_kind.items():
        print(f"| {kind} | {r['rows']} | {r['correct']} |")


if __name__ == "__main__":
    main()
