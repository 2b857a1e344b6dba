"""Datasets for judging factual consistency: FIB, USB, the shipped sample, synthetic rows.

Every loader returns a :class:`pyarrow.Table` in :data:`DATASET_SCHEMA` (``id, doc_id,
premise, hypothesis, target, source, split``); :func:`write_dataset` writes one atomically.
:mod:`~batchjudge.datasets.splits` mixes, splits and balances them with explicit seeds, and
:func:`check_labels` (or the streaming :class:`LabelChecker`) warns about labels that would
make scores meaningless. The synthetic generator lives in :mod:`batchjudge.datasets.synth`.
"""

from __future__ import annotations

from batchjudge.datasets.cookbook import load_cookbook
from batchjudge.datasets.fib import build_fib
from batchjudge.datasets.io import write_dataset
from batchjudge.datasets.sample import load_sample
from batchjudge.datasets.sanity import LabelChecker, SanityWarning, check_labels
from batchjudge.datasets.schema import DATASET_COLUMNS, DATASET_SCHEMA
from batchjudge.datasets.splits import balance, grouped_split, mix
from batchjudge.datasets.usb import (
    UsbLabelsRepaired,
    UsbReport,
    build_usb,
    load_usb,
    repair_usb,
)

__all__ = [
    "DATASET_COLUMNS",
    "DATASET_SCHEMA",
    "LabelChecker",
    "SanityWarning",
    "UsbLabelsRepaired",
    "UsbReport",
    "balance",
    "build_fib",
    "build_usb",
    "check_labels",
    "grouped_split",
    "load_cookbook",
    "load_sample",
    "load_usb",
    "mix",
    "repair_usb",
    "write_dataset",
]
