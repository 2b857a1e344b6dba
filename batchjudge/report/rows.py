"""Each result joined with its input row: a whole run as one table to look into.

``batchjudge report RUN --rows FILE`` and the HTML report's table of rows read the run's inputs
again (the paths ``run.json`` names, resolved from the current directory), key every row
exactly as the engine did (:meth:`batchjudge.engine.source.Source.keyed_batches`) and join on
``row_id``. The inputs are streamed in batches and the join stops once every result has its
row; only the results (which the report holds anyway) are in memory.

One row per result, in input order, with these columns (types as in Arrow)::

    row_id string · premise string · hypothesis string · target int8
    <the inputs' other columns that every input file has: doc_id, split, a pair id...>
    status string · verdict int8 · correct bool · score float64 · reason string
    error string · attempts int32 · latency_ms float64 · prompt_tokens int64
    completion_tokens int64 · truncated_tokens int64 · model string · raw_response string

``correct`` is ``verdict == target`` for labelled ``ok`` rows, else null. An input column whose
name is taken by one of these gets an ``input_`` prefix. Polars, DuckDB and pandas read the
file as they find it (``pl.read_parquet``, ``duckdb.read_csv``, ``pd.read_json(lines=True)``).

The join is all or nothing: inputs that are gone, or results with no input row (inputs edited
since the run), are an :class:`~batchjudge.errors.InputError`, never a shorter file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from batchjudge.core.results import STATUS_OK
from batchjudge.core.schema import RESULT_SCHEMA
from batchjudge.engine.input_kinds import MEMORY_NAME
from batchjudge.engine.source import Source, open_source
from batchjudge.errors import ConfigError, InputError
from batchjudge.report.loading import RunData

__all__ = ["ROWS_FORMATS", "JoinedRows", "correct_column", "table_file", "write_rows", "write_tables"]

ROWS_FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
"""File suffix → format of :func:`write_rows` and :func:`write_tables`."""

_INPUT_COLUMNS = ("premise", "hypothesis")
_RESULT_ORDER = (
    "target", "status", "verdict", "correct", "score", "reason", "error", "attempts",
    "latency_ms", "prompt_tokens", "completion_tokens", "truncated_tokens", "model",
    "raw_response",
)  # fmt: skip
_POSITION = "__result_position"


class JoinedRows:
    """The run's results joined with their input rows, streamed as Arrow tables.

    Building it opens the run's inputs, so an :class:`InputError` saying they are gone comes
    before anything is written; :meth:`tables` then yields the joined rows, and raises
    :class:`InputError` at the end if some result had no input row.
    """

    def __init__(self, run: RunData, *, batch_size: int = 4096) -> None:
        self._run = run
        self._batch_size = batch_size
        self._source = _open_inputs(run)
        shared = self._source.shared_columns()
        taken = {"row_id", *_INPUT_COLUMNS, *_RESULT_ORDER}
        self._extras = list(shared)
        self._renames = {c: f"input_{c}" for c in shared if c in taken}
        result_types = {f.name: f.type for f in RESULT_SCHEMA}
        fields = [pa.field("row_id", pa.string()), *(pa.field(c, pa.string()) for c in _INPUT_COLUMNS)]
        fields.append(pa.field("target", result_types["target"]))
        fields += [pa.field(self._renames.get(c, c), t) for c, t in shared.items()]
        fields += [
            pa.field(c, pa.bool_() if c == "correct" else result_types[c])
            for c in _RESULT_ORDER if c != "target"
        ]  # fmt: skip
        self.schema = pa.schema(fields)
        """The Arrow schema of every table :meth:`tables` yields."""

    def tables(self) -> Iterator[pa.Table]:
        """Joined rows, one table per input batch that holds results, in input order."""
        results = _with_all_result_columns(self._run.results).with_row_index(_POSITION)
        seen = np.zeros(results.height, dtype=bool)
        found = 0
        for rows, batch in self._source.keyed_batches(self._extras, self._batch_size):
            if found == results.height:
                break  # every result has its row: the rest of the inputs is not needed
            texts = pl.from_arrow(batch.select([*_INPUT_COLUMNS, *self._extras]))
            assert isinstance(texts, pl.DataFrame)
            texts = texts.rename(self._renames).with_columns(
                pl.Series("row_id", [row.row_id for row in rows], dtype=pl.String)
            )
            joined = texts.join(results, on="row_id", how="inner", maintain_order="left")
            if joined.height == 0:
                continue
            position = joined[_POSITION].to_numpy()
            first = np.zeros(position.size, dtype=bool)
            first[np.unique(position, return_index=True)[1]] = True
            fresh = first & ~seen[position]  # an id repeated in the inputs joins once
            seen[position[fresh]] = True
            found += int(fresh.sum())
            yield self._arrow(joined.filter(pl.Series(fresh)))
        if found < results.height:
            missing = results.height - found
            raise InputError(
                f"{self._run.path}: {missing:,} of {results.height:,} results have no row in the "
                "run's inputs (edited since the run?), so they cannot be joined with their texts"
            )

    def _arrow(self, joined: pl.DataFrame) -> pa.Table:
        frame = joined.with_columns(correct_column()).select(self.schema.names)
        return frame.to_arrow().cast(self.schema)


def correct_column() -> pl.Expr:
    """``correct``: whether the verdict matches the target, for labelled ``ok`` rows only."""
    scored = (pl.col("status") == STATUS_OK) & pl.col("target").is_not_null() & pl.col("verdict").is_not_null()
    return pl.when(scored).then(pl.col("verdict") == pl.col("target")).otherwise(None).alias("correct")


def _open_inputs(run: RunData) -> Source:
    inputs = run.config.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError(
            f"{run.path}: run.json names no inputs, so the rows cannot be joined with their texts"
        )
    if inputs == [MEMORY_NAME]:
        raise InputError(
            f"{run.path}: the run's input was a table in memory ({MEMORY_NAME}), so its rows cannot be joined "
            "with their texts here; join results/*.parquet with your table on row_id (its id column) instead"
        )
    try:
        return open_source([str(p) for p in inputs], run.config.get("columns"))
    except InputError as exc:
        raise InputError(
            f"{run.path}: the run's inputs are not readable here ({exc}), so its rows cannot "
            "be joined with their texts; run from the folder the run was started in"
        ) from exc


def _with_all_result_columns(results: pl.DataFrame) -> pl.DataFrame:
    """The results with every result column (``raw_response`` null when not loaded)."""
    missing = [f.name for f in RESULT_SCHEMA if f.name not in results.columns]
    return results.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in missing)


def write_rows(run: RunData, path: str | Path, *, batch_size: int = 4096) -> int:
    """Write ``run``'s results joined with their input rows to ``path``; return the rows.

    The format follows the suffix (:data:`ROWS_FORMATS`). A failure (inputs gone, results
    without an input row) leaves no file at all (see :func:`write_tables`). Load ``run``
    with ``raw_response=True`` to include the replies; otherwise that column is null.
    """
    out = table_file(path)
    joined = JoinedRows(run, batch_size=batch_size)
    return write_tables(out, joined.schema, joined.tables())


def table_file(path: str | Path) -> Path:
    """``path`` checked as a place for :func:`write_tables`: a known suffix, an existing folder."""
    out = Path(path)
    if out.suffix.lower() not in ROWS_FORMATS:
        raise ConfigError(
            f"{out}: unknown table format {out.suffix or '(no suffix)'!r}; "
            f"use {', '.join(ROWS_FORMATS)}"
        )
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: cannot write: folder {out.parent} does not exist")
    return out


def write_tables(path: Path, schema: pa.Schema, tables: Iterable[pa.Table]) -> int:
    """Write ``tables`` (all of ``schema``) to ``path`` in its suffix's format; return rows.

    The file is written under a temporary name and renamed once complete, so an error while
    ``tables`` is consumed leaves no file behind, never a short one.
    """
    out = table_file(path)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with tmp.open("wb") as handle, _writer(ROWS_FORMATS[out.suffix.lower()], handle, schema) as write:
            for table in tables:
                write(table)
                written += table.num_rows
        os.replace(tmp, out)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write ({exc.strerror})") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return written


@contextlib.contextmanager
def _writer(fmt: str, handle: IO[bytes], schema: pa.Schema) -> Iterator[Any]:
    """A ``write(table)`` function for ``fmt`` on ``handle``; the file is complete on exit."""
    if fmt == "parquet":
        with pq.ParquetWriter(handle, schema, compression="zstd") as parquet:
            yield parquet.write_table
    elif fmt == "csv":
        with pa_csv.CSVWriter(handle, schema) as csv:
            yield csv.write_table
    else:
        yield lambda table: _write_jsonl(handle, table)


def _write_jsonl(handle: IO[bytes], table: pa.Table) -> None:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame.write_ndjson(handle)
