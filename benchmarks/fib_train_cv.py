"""The local judge on FIB's *train* split: the dev set its design choices are made on.

Usage: ``python benchmarks/fib_train_cv.py [--data ../shared/data/cookbook] [--seeds 5] [--no-usb]``.

FIB validation is only ever measured (``cookbook.py``, ``local_judge_quality.py``); every
choice of feature, penalty or mixing is made on FIB train, by five-fold cross-validation over
its 410 articles (an article's two summaries always fall in the same fold), repeated with
``--seeds`` fold assignments. Each fold trains the way the local launcher does (from the
shipped judge, :func:`batchjudge.localjudge.train` with ``prior=``) on the other four fifths
and is scored on its own fifth:

- ``FIB``: fine-tuned on the FIB rows alone;
- ``FIB + USB, mixed``: the same plus USB train (the cookbook's copy, labels repaired), both
  sources in equal shares, as the launcher mixes several training files.

The zero-shot default is scored on every FIB train row. Figures are pooled over the folds and
averaged over the seeds; the spread of accuracy over single folds (82 articles each, about
FIB validation's 90) says how far one such split can fall from the mean. Writes
``benchmarks/results/fib_train_cv.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from batchjudge.core.metrics import calibration_bins, pairwise_accuracy, roc_auc
from batchjudge.datasets.cookbook import load_cookbook
from batchjudge.datasets.usb import repair_usb
from batchjudge.localjudge import LocalJudge, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"
RESULTS = Path(__file__).resolve().parent / "results" / "fib_train_cv.json"
FOLDS = 5
Rows = tuple[list[str], list[str], list[int]]


def _rows(table: pa.Table) -> Rows:
    return (table.column("premise").to_pylist(), table.column("hypothesis").to_pylist(),
            table.column("target").to_pylist())  # fmt: skip


def _folds(premises: list[str], seed: int) -> np.ndarray:
    """Each row's fold: articles ordered by a seeded hash, dealt round-robin."""
    key = str(seed).encode()
    articles = sorted(set(premises), key=lambda p: hashlib.blake2b(p.encode(), digest_size=8, key=key).digest())
    fold = {article: i % FOLDS for i, article in enumerate(articles)}
    return np.array([fold[p] for p in premises])


def _measure(premises: list[str], targets: list[int], scores: np.ndarray) -> dict[str, float]:
    y = np.array(targets, dtype=np.float64)
    pairwise = pairwise_accuracy(premises, targets, scores, resamples=0).value
    return {
        "accuracy": float(np.mean((scores >= 0.5) == (y == 1))),
        "roc_auc": float(roc_auc(y, scores) or 0.0),
        "pairwise": float(pairwise or 0.0),
        "ece": float(calibration_bins(y, scores)[1] or 0.0),
    }


def _cross_validate(fib: Rows, usb: Rows | None, seeds: int) -> dict[str, Any]:
    """Pooled figures per seed (averaged) and accuracy per single fold."""
    prior = LocalJudge.load()
    premises, hypotheses, targets = fib
    pooled: list[dict[str, float]] = []
    fold_accuracy: list[float] = []
    for seed in range(seeds):
        fold = _folds(premises, seed)
        scores = np.zeros(len(targets))
        for k in range(FOLDS):
            fit = [i for i in range(len(targets)) if fold[i] != k]
            rows = ([premises[i] for i in fit], [hypotheses[i] for i in fit], [targets[i] for i in fit])
            sources = ["fib"] * len(fit)
            if usb is not None:
                rows = (rows[0] + usb[0], rows[1] + usb[1], rows[2] + usb[2])
                sources += ["usb"] * len(usb[2])
            judge = train(*rows, name=f"cv-{seed}-{k}", prior=prior, sources=sources, balance=True)
            held = np.flatnonzero(fold == k)
            found = judge.predict_many((premises[i], hypotheses[i]) for i in held)
            scores[held] = [j.score for j in found]
            y = np.array([targets[i] for i in held])
            fold_accuracy.append(float(np.mean((scores[held] >= 0.5) == (y == 1))))
        pooled.append(_measure(premises, targets, scores))
    mean = {key: round(float(np.mean([p[key] for p in pooled])), 3) for key in pooled[0]}
    return {**mean, "fold_accuracy": {"mean": round(float(np.mean(fold_accuracy)), 3),
                                      "sd": round(float(np.std(fold_accuracy)), 3),
                                      "min": round(min(fold_accuracy), 3), "max": round(max(fold_accuracy), 3)}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-usb", action="store_true", help="skip the FIB + USB rows")
    args = parser.parse_args()
    train_file, usb_file = args.data / "fib-train.jsonl", args.data / "usb-train.jsonl"
    if not train_file.is_file():
        raise SystemExit(f"{train_file} not present: this benchmark needs FIB train")
    started, cpu = time.perf_counter(), time.process_time()
    fib = _rows(load_cookbook(train_file))
    default = LocalJudge.load()
    zero = _measure(fib[0], fib[2], np.array([j.score for j in default.predict_many(zip(fib[0], fib[1], strict=True))]))
    results: list[dict[str, Any]] = [{"judge": "zero-shot (local-judge)", **{k: round(v, 3) for k, v in zero.items()}}]
    results.append({"judge": "fine-tuned: FIB", **_cross_validate(fib, None, args.seeds)})
    if usb_file.is_file() and not args.no_usb:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the repair announces itself; it is expected here
            usb = _rows(repair_usb(load_cookbook(usb_file))[0])
        results.append({"judge": "fine-tuned: FIB + USB, mixed", **_cross_validate(fib, usb, args.seeds)})
    load = [round(v, 2) for v in os.getloadavg()]
    report = {"rows": len(fib[2]), "folds": FOLDS, "seeds": args.seeds, "load_avg_1m_5m_15m": load,
              "wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(time.process_time() - cpu, 1),
              "results": results}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"FIB train, {len(fib[2])} rows, {FOLDS}-fold by article x {args.seeds} seeds; load average {load[0]}")
    print("| judge | accuracy | ROC-AUC | pairwise | ECE | accuracy per fold: mean ± sd [min, max] |")
    print("|---|---|---|---|---|---|")
    for r in results:
        spread = r.get("fold_accuracy")
        cell = f"{spread['mean']} ± {spread['sd']} [{spread['min']}, {spread['max']}]" if spread else "-"
        print(f"| {r['judge']} | {r['accuracy']} | {r['roc_auc']} | {r['pairwise']} | {r['ece']} | {cell} |")


if __name__ == "__main__":
    main()
