"""Regenerate the shipped default weights, ``weights/local-judge.json``, deterministically.

    python -m batchjudge.localjudge.build_default [--check]

The default judge is trained and calibrated only on data the project makes itself:

1. the first :data:`TRAIN_ROWS` rows of the synthetic stream (:mod:`batchjudge.datasets.synth`,
   seed :data:`SEED`), whose errors are mostly facts the document never states;
2. inconsistent twins (:mod:`batchjudge.datasets.perturb`) of the consistent summaries in the
   first :data:`TWIN_ROWS` of those rows: names, numbers and dates swapped in from elsewhere
   in the same document, and negations, which only a judge that reads can see; they weigh
   :data:`TWIN_SHARE` of the synthetic rows, so they teach the reading features without
   drowning the rest;
3. both classes weigh the same (:func:`~batchjudge.localjudge._train.balanced`): the twins
   are all inconsistent, and the judge's base rate should be ½, not the training mix's;
4. the temperature is then refitted on the project's hand-written sample
   (:mod:`batchjudge.datasets.sample`: 100 news-like pairs it never trained on), because
   synthetic rows are easier than real news and a judge calibrated on them alone is
   overconfident there; and because 100 pairs pin a temperature down only loosely, and real
   summaries are more abstractive than the sample's, the judge takes the lowest temperature
   the sample cannot rule out (one-sided bound at :data:`CALIBRATION_CONFIDENCE`, documents
   resampled): its scores err toward ½ rather than away from it.

``--check`` rebuilds in memory and exits 1 if the shipped file differs (numbers compared to a
relative 1e-6, so another BLAS build still passes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchjudge.datasets.perturb import perturb_table
from batchjudge.datasets.sample import load_sample
from batchjudge.datasets.synth import synth_batches
from batchjudge.localjudge._judge import LocalJudge
from batchjudge.localjudge._registry import DEFAULT_MODEL
from batchjudge.localjudge._train import recalibrate, train

__all__ = [
    "CALIBRATION_CONFIDENCE",
    "L2_DEFAULT",
    "SEED",
    "TRAIN_ROWS",
    "TWIN_ROWS",
    "TWIN_SHARE",
    "WEIGHTS",
    "build",
    "same_weights",
]

TRAIN_ROWS = 12_000
TWIN_ROWS = 4_000
TWIN_SHARE = 0.3
L2_DEFAULT = 1000.0
"""A strong ridge penalty: synthetic evidence is cleaner than real news, and a judge that
leans on every feature a little carries over to real documents better than one that leans
hard on a few (ROC-AUC 0.73 -> 0.75 on FIB articles outside its validation split, for 0.006
of held-out synthetic ROC-AUC)."""
CALIBRATION_CONFIDENCE = 0.95
"""How sure the sample must be before the judge's scores claim more confidence."""
SEED = 0
WEIGHTS = Path(__file__).resolve().parent / "weights" / "local-judge.json"


def build() -> LocalJudge:
    """Train and calibrate the default judge (same input, same weights); see the module doc."""
    synth = pa.Table.from_batches(list(synth_batches(TRAIN_ROWS, seed=SEED)))
    twins = perturb_table(synth.slice(0, TWIN_ROWS), seed=SEED)
    twins = twins.filter(pc.not_equal(twins.column("kind"), "consistent"))
    rows = pa.concat_tables([synth.select(["premise", "hypothesis", "target"]),
                             twins.select(["premise", "hypothesis", "target"])])
    judge = train(
        rows.column("premise").to_pylist(),
        rows.column("hypothesis").to_pylist(),
        rows.column("target").to_pylist(),
        name=DEFAULT_MODEL,
        seed=SEED,
        l2=L2_DEFAULT,
        sources=["synth"] * synth.num_rows + ["perturbed"] * twins.num_rows,
        source_weights={"synth": 1.0, "perturbed": TWIN_SHARE},
        balance=True,
        data=(f"batchjudge.datasets.synth: rows 0..{TRAIN_ROWS - 1}, seed {SEED}; "
              f"batchjudge.datasets.perturb twins of rows 0..{TWIN_ROWS - 1}, share {TWIN_SHARE}"),
    )
    sample = load_sample()
    return recalibrate(
        judge,
        sample.column("premise").to_pylist(),
        sample.column("hypothesis").to_pylist(),
        sample.column("target").to_pylist(),
        data=f"batchjudge.datasets.sample ({sample.num_rows} rows)",
        confidence=CALIBRATION_CONFIDENCE,
        seed=SEED,
    )


def same_weights(a: Any, b: Any, rel: float = 1e-6) -> bool:
    """Whether two weights files agree: numbers to ``rel`` (BLAS builds differ in the last
    bits), everything else exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_weights(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_weights(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(
            a, b, rel_tol=rel, abs_tol=rel
        )
    return bool(a == b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the shipped local judge weights.")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    judge = build()
    if args.check:
        shipped = json.loads(WEIGHTS.read_text(encoding="utf-8"))
        same = same_weights(shipped, judge.to_dict())
        print(f"{WEIGHTS}: {'up to date' if same else 'differs from a fresh build'}")
        return 0 if same else 1
    judge.save(WEIGHTS)
    print(f"wrote {WEIGHTS}: held out {json.dumps(judge.provenance.get('heldout'))}, "
          f"calibration {json.dumps(judge.provenance.get('calibration'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
