"""Labelled data the fine-tuning, launcher, batch and cookbook tests make themselves.

Synthetic rows from :mod:`batchjudge.datasets.synth` (invented news, half the summaries
inconsistent) written as dataset Parquet, so no test needs ``../shared/data``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from batchjudge.datasets.io import write_dataset
from batchjudge.datasets.synth import synth_batches

__all__ = ["labelled_parquet"]


def labelled_parquet(path: Path, rows: int, *, seed: int) -> Path:
    """Write ``rows`` synthetic labelled rows (dataset schema) to ``path``; return it."""
    return write_dataset(pa.Table.from_batches(list(synth_batches(rows, seed=seed))), path)
