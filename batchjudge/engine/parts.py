"""One results part, ``results/part-NNNNNN.parquet``: how it is written and how it checks itself.

A part is written atomically (:mod:`batchjudge.engine.files`) with Parquet page checksums and
three entries in its key-value metadata:

- ``batchjudge.rows``: ``COUNT:HEX``, the row count and a BLAKE2 digest of the ``row_id`` and
  ``status`` columns (the only one parts written before run ids carry);
- ``batchjudge.values``: ``COUNT:HEX``, the same over the run id and every column's values,
  in ``RESULT_SCHEMA`` order;
- ``batchjudge.run``: the id of the run that wrote it (see :class:`~batchjudge.engine.checkpoint.RunDir`).

:func:`read_part` verifies, on every read: the page checksums; the column names and types
against ``RESULT_SCHEMA`` (a flipped bit in the footer can rename a column, ``verdict`` →
``vereict``, which would otherwise be read as absent); the row digest; and, when the whole
part is read, the values digest. A part with a run id must have the values digest and every
column. Parts written before those existed (no run id, perhaps fewer columns) still read:
their columns must be ``RESULT_SCHEMA``'s, those absent are left out.

The bytes of a whole part have a digest too (:func:`file_digest`, returned by
:func:`write_part_file`): ``run.json`` records it, which binds each part to its run.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from batchjudge.core.schema import RESULT_SCHEMA
from batchjudge.engine.files import ADVICE, atomic_write_bytes, storage_error
from batchjudge.errors import BatchJudgeError, CheckpointError


class PartFile(Protocol):
    """A part where it is stored: a local ``Path``, or a part in an object store
    (:class:`~batchjudge.engine.objstore.ObjectPart`). Shown by ``str``."""

    @property
    def name(self) -> str: ...

    def read_bytes(self) -> bytes: ...

__all__ = [
    "PART",
    "PartFile",
    "encode_part",
    "conform",
    "corrupt",
    "file_digest",
    "from_columns",
    "list_parts",
    "listed",
    "part_number",
    "read_part",
    "written_by",
    "write_part_file",
]

PART = re.compile(r"part-(\d{6,})\.parquet")
"""The name of a part: only files so named are read."""
_ROWS = b"batchjudge.rows"
_VALUES = b"batchjudge.values"
_RUN = b"batchjudge.run"
_SHOWN = 3
"""File names an error lists before saying how many more."""
_STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())
"""How a string column may come back, depending on the Parquet reader's defaults."""


def listed(names: Sequence[str], more: int = 0) -> str:
    """``'a', 'b', 'c' and N more``: names for a one-line error."""
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    rest = len(names) - _SHOWN + more
    return shown + (f" and {rest} more" if rest > 0 else "")


def part_number(path: PartFile) -> int:
    """The NNNNNN of ``part-NNNNNN.parquet``."""
    match = PART.fullmatch(path.name)
    assert match is not None, path
    return int(match[1])


def list_parts(results: Path) -> list[Path]:
    """The engine's parts in ``results`` in write order; CheckpointError naming any other
    visible file there (hidden files are temporary files or the system's, and skipped)."""
    if not results.is_dir():
        return []
    try:
        names = sorted(os.listdir(results))
    except OSError as exc:
        raise storage_error(results, exc, "list the results") from exc
    foreign = [n for n in names if not n.startswith(".") and not PART.fullmatch(n)]
    if foreign:
        raise CheckpointError(
            f"{results}: {listed(foreign)} not written by batchjudge (only part-NNNNNN.parquet "
            "files belong here); move them out of results/, then run the same command again"
        )
    return sorted((results / n for n in names if PART.fullmatch(n)), key=part_number)


def _rows_digest(row_ids: Sequence[str], statuses: Sequence[str]) -> bytes:
    """``COUNT:HEX`` for a part's ``row_id`` and ``status`` columns."""
    h = hashlib.blake2b(digest_size=16)
    h.update("\x1e".join(row_ids).encode("utf-8", "surrogatepass"))
    h.update(b"\x1d")
    h.update("\x1e".join(statuses).encode("utf-8", "surrogatepass"))
    return f"{len(row_ids)}:{h.hexdigest()}".encode()


def _values_digest(table: pa.Table, run_id: bytes) -> bytes:
    """``COUNT:HEX`` over the run id (so that a flipped bit there reads as damage, not as
    another run's part) and every ``RESULT_SCHEMA`` column of ``table``: its name and type,
    then its values (JSON for strings and integers, where a null is distinct from ``""`` and
    0; a null mask and the exact IEEE bytes for floats, where JSON would merge NaN and null)."""
    h = hashlib.blake2b(run_id + b"\x00", digest_size=16)
    for field in RESULT_SCHEMA:
        values = table.column(field.name).to_pylist()
        h.update(f"{field.name}:{field.type}\x00".encode())
        if pa.types.is_floating(field.type):
            h.update(bytes(v is None for v in values))
            h.update(np.array([0.0 if v is None else v for v in values], dtype="<f8").tobytes())
        else:
            h.update(orjson.dumps(values))
    return f"{table.num_rows}:{h.hexdigest()}".encode()


def file_digest(path: PartFile) -> str:
    """The BLAKE2 digest (hex) of a part's bytes, as ``run.json`` records it; OSError as is."""
    if not isinstance(path, Path):
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _bytes_digest(data: pa.Buffer) -> str:
    return hashlib.blake2b(memoryview(data), digest_size=16).hexdigest()


def write_part_file(table: pa.Table, path: Path, run_id: str) -> str:
    """Write ``table`` (``RESULT_SCHEMA``) to ``path`` atomically, with page checksums, its
    digests and ``run_id``; return the digest of the file's bytes (see :func:`file_digest`)."""
    data, digest = encode_part(table, run_id)
    atomic_write_bytes(path, memoryview(data), "write a results part")
    return digest


def encode_part(table: pa.Table, run_id: str) -> tuple[pa.Buffer, str]:
    """A part's bytes (``table`` with page checksums, its digests and ``run_id``) and their
    digest (see :func:`file_digest`)."""
    metadata = {
        _ROWS: _rows_digest(table.column("row_id").to_pylist(), table.column("status").to_pylist()),
        _VALUES: _values_digest(table, run_id.encode()),
        _RUN: run_id.encode(),
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    out = pa.BufferOutputStream()
    pq.write_table(table, out, compression="zstd", write_page_checksum=True)
    data = out.getvalue()
    return data, _bytes_digest(data)


def written_by(table: pa.Table) -> str | None:
    """The id of the run that wrote the part ``table`` was read from (None: written before
    run ids)."""
    run = (table.schema.metadata or {}).get(_RUN)
    return None if run is None else run.decode("utf-8", "replace")


def _check_schema(schema: pa.Schema) -> None:
    """ValueError naming the first column that is not ``RESULT_SCHEMA``'s, by name or type."""
    expected = {f.name: f.type for f in RESULT_SCHEMA}
    for field in schema:
        want = expected.get(field.name)
        if want is None:
            raise ValueError(f"column {field.name!r} is not a result column")
        same = field.type in _STRING_TYPES if want == pa.string() else field.type == want
        if not same:
            raise ValueError(f"column {field.name!r} is {field.type}, not {want}")
    metadata = schema.metadata or {}
    if _RUN in metadata or _VALUES in metadata:  # written with run ids: whole, and checked whole
        missing = [n for n in expected if n not in schema.names]
        if missing:
            raise ValueError(f"column {missing[0]!r} is missing")
        if _RUN not in metadata or _VALUES not in metadata:
            raise ValueError("its run id or its values digest is missing")
    elif "row_id" not in schema.names or "status" not in schema.names:
        raise ValueError("no row_id/status column: not a results part")


def read_part(path: PartFile, columns: Sequence[str] | None = None) -> pa.Table:
    """One part's ``columns`` (all by default; those an older part lacks are left out),
    verified as the module docstring says (the values digest only when every column is read).

    Raises CheckpointError naming the part when it does not check out, StorageError when the
    file system refuses the read.
    """
    try:
        source = path if isinstance(path, Path) else pa.BufferReader(path.read_bytes())
        parquet = pq.ParquetFile(source, page_checksum_verification=True)
        schema = parquet.schema_arrow
        _check_schema(schema)
        wanted = None if columns is None else [
            c for c in dict.fromkeys([*columns, "row_id", "status"]) if c in schema.names
        ]
        table = parquet.read(columns=wanted)
        metadata = schema.metadata or {}
        rows = metadata.get(_ROWS)
        if rows is not None and rows != _rows_digest(table.column("row_id").to_pylist(),
                                                     table.column("status").to_pylist()):
            raise ValueError("its rows do not match the digest written with it")
        values = metadata.get(_VALUES)
        if columns is None and values is not None and values != _values_digest(table, metadata[_RUN]):
            raise ValueError("its values do not match the digest written with it")
        table = table.replace_schema_metadata(metadata)  # what was checked: the footer holds a second copy
    except BatchJudgeError:
        raise  # the store refused the read: said as the store's error
    except OSError as exc:
        if exc.errno in ADVICE:
            raise storage_error(str(path), exc, "read a results part") from exc
        raise corrupt(path, exc) from exc
    except Exception as exc:  # noqa: BLE001 - any failure to decode a part means it is damaged
        raise corrupt(path, exc) from exc
    return table if columns is None else table.select([c for c in columns if c in table.column_names])


def corrupt(path: PartFile, exc: BaseException) -> CheckpointError:
    """The one-line error for a part that does not check out."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return CheckpointError(
        f"{path}: unreadable results part, damaged ({first}); delete it (the same command judges "
        "its rows again) or restore it from a backup"
    )


def from_columns(columns: Mapping[str, list[Any]]) -> pa.Table:
    """A ``RESULT_SCHEMA`` table from Python column lists, built by polars.

    pyarrow builds arrays from Python objects only after importing pandas when it is
    installed (0.25-0.3 s of CPU): done by the first flush, that import held the interpreter
    while the senders worked, and the sends of a 400 RPS run fell to 320-340 a second for
    that second. Polars, already loaded with the datasets in a run, converts without it; it is
    imported here, not with the module, for the processes that never write a part (Ray
    workers). Its schema is spelled out because ``pl.from_arrow`` of an empty table imports
    pandas too.
    """
    import polars as pl

    types = {pa.string(): pl.String, pa.int8(): pl.Int8, pa.int32(): pl.Int32, pa.int64(): pl.Int64,
             pa.float64(): pl.Float64}
    schema = {f.name: types[f.type] for f in RESULT_SCHEMA}
    return pl.DataFrame(dict(columns), schema=schema).to_arrow().cast(RESULT_SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """``table`` with ``RESULT_SCHEMA``'s columns, in order (null where an older part lacks one)."""
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in RESULT_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=RESULT_SCHEMA)
