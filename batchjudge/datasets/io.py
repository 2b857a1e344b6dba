"""Reading and writing dataset files: JSONL/CSV records in, atomic Parquet out.

Readers turn a malformed line into an :class:`InputError` naming the file and line;
:func:`write_dataset` writes to a temporary name in the target folder, fsyncs and renames,
so a crash never leaves a half-written dataset under the final name.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from batchjudge.datasets.schema import DATASET_SCHEMA
from batchjudge.errors import ConfigError, InputError

__all__ = ["iter_dataset_batches", "read_records", "require_columns", "require_file", "write_dataset"]

_BATCH_ROWS = 8_192


def require_file(path: Path) -> None:
    """InputError unless ``path`` is a file, saying why: it does not exist, or is not a file."""
    if not path.exists():
        raise InputError(f"{path}: does not exist")
    if not path.is_file():
        raise InputError(f"{path}: not a file")


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` from a JSONL or CSV file (line numbers from 1).

    CSV fields stay strings; cells may hold long multi-line text (the field size limit is
    lifted). Raises :class:`InputError` for a missing file, an unknown extension or a line
    that is not a JSON object.
    """
    require_file(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        yield from _read_jsonl(path)
    elif suffix == ".csv":
        yield from _read_csv(path)
    else:
        raise InputError(f"{path}: expected a .jsonl or .csv file")


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: expected a JSON object per line")
            yield number, record


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)


def require_columns(path: Path, record: dict[str, Any], columns: Iterable[str]) -> None:
    """Raise :class:`InputError` naming the first of ``columns`` missing from ``record``."""
    for column in columns:
        if column not in record:
            raise InputError(f"{path}: missing column {column!r} (found {sorted(record)})")


def write_dataset(table: pa.Table, path: Path) -> Path:
    """Write ``table`` to ``path`` as Parquet atomically (temp file, fsync, rename).

    The table must start with the columns of :data:`DATASET_SCHEMA`, in order and type.
    """
    leading = pa.schema(list(table.schema)[: len(DATASET_SCHEMA)])
    if not leading.equals(DATASET_SCHEMA):
        raise InputError(f"{path}: table does not follow the dataset schema: {table.schema}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp, compression="zstd")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # the folder is a file, read-only, or the disk is full
        raise ConfigError(f"{exc.filename or path}: cannot write ({exc.strerror})") from exc
    finally:
        with contextlib.suppress(OSError):  # nothing to clean up when the folder is unusable
            tmp.unlink(missing_ok=True)
    return path


def iter_dataset_batches(path: Path, columns: Iterable[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet dataset file as record batches, reading only ``columns`` present.

    Memory stays bounded by one batch; missing requested columns are simply not read.
    """
    require_file(path)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = parquet.schema_arrow.names
    wanted = None if columns is None else [c for c in columns if c in names]
    yield from parquet.iter_batches(batch_size=_BATCH_ROWS, columns=wanted)
