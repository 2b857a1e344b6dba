"""Datasets for judging factual consistency: FIB, USB, the shipped sample, synthetic rows.

Every loader returns a :class:`pyarrow.Table` in :data:`DATASET_SCHEMA` (``id, doc_id,
premise, hypothesis, target, source, split``); :func:`write_dataset` writes one atomically.
:mod:`~batchjudge.datasets.splits` mixes, splits and balances them with explicit seeds.
"""

from __future__ import annotations

from batchjudge.datasets.cookbook import load_cookbook
from batchjudge.datasets.fib import build_fib
from batchjudge.datasets.io import write_dataset
from batchjudge.datasets.schema import DATASET_COLUMNS, DATASET_SCHEMA
from batchjudge.datasets.splits import balance, grouped_split, mix

__all__ = [
    "DATASET_COLUMNS",
    "DATASET_SCHEMA",
    "balance",
    "build_fib",
    "grouped_split",
    "load_cookbook",
    "mix",
    "write_dataset",
]
