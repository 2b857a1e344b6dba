"""Loader for the files the Mistral + W&B cookbook shipped, which many users already have.

Two formats: ``{premise, hypothesis, target}`` JSON lines (``fib-train.jsonl``,
``usb-train.jsonl``...) and the USB CSV (``usb-val.csv``: ``id, summ_idx, input_lines,
summary_sent, label, source``, where ``source`` is the document). The CSV's ``label`` is read
with the cookbook's own mapping (2 entailment -> 1, 0 stays 0). Labels are taken as they are:
the cookbook's USB copy is all-consistent, which :mod:`batchjudge.datasets.usb` detects and
repairs; this module only reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from batchjudge.datasets.io import read_records, require_columns
from batchjudge.datasets.schema import dataset_table, row_ids, stable_id
from batchjudge.errors import InputError

__all__ = ["guess_source", "guess_split", "load_cookbook"]

_SPLIT_WORDS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def guess_split(path: Path, default: str = "test") -> str:
    """The split a file's name says (``fib-val.jsonl`` -> ``val``), else ``default``."""
    for word in re.split(r"[^a-z]+", path.stem.lower()):
        if word in _SPLIT_WORDS:
            return _SPLIT_WORDS[word]
    return default


def guess_source(path: Path) -> str:
    """The source a cookbook file's name says: ``fib-*`` -> ``fib-xsum``, ``usb-*`` -> ``usb``."""
    stem = path.stem.lower()
    if stem.startswith("fib"):
        return "fib-xsum"
    if stem.startswith("usb"):
        return "usb"
    return stem


def load_cookbook(path: Path, *, source: str | None = None, split: str | None = None) -> pa.Table:
    """Read one cookbook file into the dataset schema, rows in file order.

    ``doc_id`` is the CSV's ``id`` column when present (the Wikipedia article), else a hash
    of the premise; ``source`` and ``split`` default to what the file name says.
    """
    source = source or guess_source(path)
    split = split or guess_split(path)
    doc_ids: list[str] = []
    premises: list[str] = []
    hypotheses: list[str] = []
    targets: list[int] = []
    for number, record in read_records(path):
        if "premise" in record:
            require_columns(path, record, ("premise", "hypothesis", "target"))
            premise, hypothesis = record["premise"], record["hypothesis"]
            target = _target(path, number, record["target"])
            doc_id = str(record["doc_id"]) if record.get("doc_id") else stable_id(premise)
        else:
            require_columns(path, record, ("id", "summary_sent", "label", "source"))
            premise, hypothesis = record["source"], record["summary_sent"]
            label = _target(path, number, record["label"], allowed=(0, 2))
            target = 1 if label == 2 else label
            doc_id = str(record["id"])
        if not isinstance(premise, str) or not isinstance(hypothesis, str):
            raise InputError(f"{path}:{number}: premise and hypothesis must be text")
        doc_ids.append(doc_id)
        premises.append(premise)
        hypotheses.append(hypothesis)
        targets.append(target)
    if not premises:
        raise InputError(f"{path}: no rows")
    return dataset_table(
        ids=row_ids(doc_ids, hypotheses),
        doc_ids=doc_ids,
        premises=premises,
        hypotheses=hypotheses,
        targets=targets,
        source=source,
        split=split,
    )


def _target(path: Path, number: int, value: object, allowed: tuple[int, ...] = (0, 1)) -> int:
    """Parse a label cell (int, bool or numeric string) and check it is one of ``allowed``."""
    parsed: int | None
    try:
        parsed = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed not in allowed:
        raise InputError(f"{path}:{number}: label {value!r} is not one of {list(allowed)}")
    return parsed
