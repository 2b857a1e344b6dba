"""Regenerate the shipped default weights, ``weights/local-judge.json``, deterministically.

    python -m batchjudge.localjudge.build_default [--check]

The default judge is trained on data the project makes itself: the first
:data:`TRAIN_ROWS` rows of the synthetic stream (:mod:`batchjudge.datasets.synth`, seed
:data:`SEED`). ``--check`` rebuilds in memory and exits 1 if the shipped file differs
(numbers compared to a relative 1e-6, so another BLAS build still passes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from batchjudge.datasets.synth import synth_batches
from batchjudge.localjudge._judge import LocalJudge
from batchjudge.localjudge._registry import DEFAULT_MODEL
from batchjudge.localjudge._train import train

__all__ = ["SEED", "TRAIN_ROWS", "WEIGHTS", "build", "same_weights"]

TRAIN_ROWS = 12_000
SEED = 0
WEIGHTS = Path(__file__).resolve().parent / "weights" / "local-judge.json"


def build() -> LocalJudge:
    """Train the default judge from the synthetic stream (same input, same weights)."""
    table = pa.Table.from_batches(list(synth_batches(TRAIN_ROWS, seed=SEED)))
    return train(
        table.column("premise").to_pylist(),
        table.column("hypothesis").to_pylist(),
        table.column("target").to_pylist(),
        name=DEFAULT_MODEL,
        seed=SEED,
        data=f"batchjudge.datasets.synth: rows 0..{TRAIN_ROWS - 1}, seed {SEED}",
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
    print(f"wrote {WEIGHTS}: {json.dumps(judge.provenance.get('heldout'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
