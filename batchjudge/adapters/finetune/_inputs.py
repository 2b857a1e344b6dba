"""Reading the labelled rows an export is built from, with the datasets package's loaders.

An input is a dataset Parquet file (what ``batchjudge data ...`` writes), a folder of them, or
a cookbook JSONL/CSV file. Cookbook USB files go through :func:`batchjudge.datasets.usb.load_usb`
and :func:`~batchjudge.datasets.usb.repair_usb`, so the copy whose every label says
"consistent" is repaired (and the repair reported) before a single example is written.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchjudge.datasets.cookbook import guess_source, load_cookbook
from batchjudge.datasets.schema import DATASET_COLUMNS, DATASET_SCHEMA
from batchjudge.datasets.usb import USB_SOURCE, UsbLabelsRepaired, load_usb, repair_usb
from batchjudge.errors import InputError

__all__ = ["LoadedInput", "load_input", "load_inputs"]


@dataclass(frozen=True)
class LoadedInput:
    """One input's rows in :data:`DATASET_SCHEMA`, and what loading it had to say."""

    path: Path
    table: pa.Table
    notes: list[str] = field(default_factory=list)


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(path.rglob("*.parquet"))
        if not found:
            raise InputError(f"{path}: no .parquet files in this folder")
        return found
    if not path.is_file():
        raise InputError(f"{path}: does not exist")
    return [path]


def _read_parquet(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in DATASET_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(
            f"{path}: missing column {missing[0]!r} (fine-tune export reads the dataset schema: "
            f"{', '.join(DATASET_COLUMNS)}; build it with `batchjudge data`)"
        )
    try:
        return table.select(list(DATASET_COLUMNS)).cast(DATASET_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"{path}: columns do not follow the dataset schema ({exc})") from exc


def load_input(path: Path) -> LoadedInput:
    """Read one input (Parquet file or folder, or cookbook JSONL/CSV) into the dataset schema."""
    if path.is_dir() or path.suffix.lower() == ".parquet":
        tables = [_read_parquet(p) for p in _parquet_files(path)]
        return LoadedInput(path, pa.concat_tables(tables))
    if guess_source(path) != USB_SOURCE:
        return LoadedInput(path, load_cookbook(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UsbLabelsRepaired)  # reported through the notes
        table, report = repair_usb(load_usb(path))
    notes = [f"{path.name}: {report.message}"] if report.repaired or report.single_class_unrepaired else []
    return LoadedInput(path, table, notes)


def load_inputs(paths: Sequence[Path]) -> list[LoadedInput]:
    """Read every input, in order; InputError names the first one that cannot be read."""
    if not paths:
        raise InputError("no input files given")
    return [load_input(Path(p)) for p in paths]
