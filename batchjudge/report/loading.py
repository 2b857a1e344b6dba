"""Reading a finished (or interrupted) run directory back for reporting.

A run directory holds ``run.json`` (configuration, fingerprint, counts, the run's id and its
parts' digests) and ``results/part-NNNNNN.parquet`` parts (schema:
:mod:`batchjudge.core.results`). Parts are checked the way a resumed run checks them
(:meth:`~batchjudge.engine.checkpoint.RunDir.verified_parts`, then
:func:`~batchjudge.engine.checkpoint.read_part`): each must be this run's (its digest recorded
in ``run.json``, or its run id), whole, with the result schema's columns, and only the
engine's part names are accepted, so the report refuses exactly what ``batchjudge run``
refuses — parts without ``run.json``, a part from another run, a damaged part, a foreign file
in ``results/``, or a row id with two results (the engine never writes one: ``--retry-failed``
rewrites the parts without the failed rows, so a second result means a part was copied, and
which one is right cannot be known). Each is an :class:`~batchjudge.errors.InputError` naming
the file and the fix. Missing ``run.json`` keys and columns absent from older parts are
tolerated (read as empty).

What is loaded is scrubbed once, here, for every report format: ``run.json`` and the text
columns a server wrote (:data:`~batchjudge.core.results.SERVER_TEXT_COLUMNS`), so a run
directory written by an older version, whose parts may hold a key today's engine would have
scrubbed, shows no key in a terminal table, ``--json``, ``--rows``, ``--html`` or ``compare``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from batchjudge.core.results import SERVER_TEXT_COLUMNS
from batchjudge.core.schema import RESULT_SCHEMA
from batchjudge.core.scrub import default_scrubber, scrub
from batchjudge.engine.checkpoint import RunDir, read_part
from batchjudge.engine.objrundir import run_dir_at
from batchjudge.engine.parts import PartFile
from batchjudge.engine.record import check_schema_version
from batchjudge.engine.stores import ObjectPath, is_url, split_url
from batchjudge.errors import BatchJudgeError, CheckpointError, InputError, first_line

__all__ = ["RunData", "input_texts", "load_run"]

_LARGE_COLUMNS = frozenset({"raw_response"})
"""Not needed for metrics and the largest column: left on disk unless asked for."""


@dataclass(frozen=True)
class RunData:
    """One run as the report sees it: its metadata and one result row per input row."""

    path: Path | ObjectPath
    meta: dict[str, Any]
    """``run.json`` as written by the engine."""
    results: pl.DataFrame

    @property
    def config(self) -> dict[str, Any]:
        """``meta["config"]`` when it is an object, else ``{}``."""
        config = self.meta.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def total(self) -> int | None:
        """The rows the run set out to judge (``counts.total`` in ``run.json``), if recorded."""
        counts = self.meta.get("counts")
        total = counts.get("total") if isinstance(counts, dict) else None
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    @property
    def partial(self) -> bool:
        """Whether fewer rows have a result than the run set out to judge (interrupted)."""
        return self.total is not None and self.results.height < self.total

    @property
    def label(self) -> str:
        """A short name for tables: the directory name."""
        return self.path.name or str(self.path)


def load_run(path: str | Path, *, raw_response: bool = False) -> RunData:
    """Load ``path`` as a run directory; InputError with one clear line when it is not one.

    ``raw_response`` also loads the replies as received (the largest column, unused by
    the metrics).
    """
    if _in_store(path):
        return _load_stored(os.fspath(path), raw_response)
    run_dir = Path(split_url(os.fspath(path))[2] if is_url(path) else path)
    if not run_dir.exists():
        raise InputError(f"{run_dir}: does not exist (expected a run directory)")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory (expected a run directory)")
    meta_file = run_dir / "run.json"
    results_dir = run_dir / "results"
    if not meta_file.is_file() and not results_dir.is_dir():
        raise InputError(
            f"{run_dir}: not a batchjudge run directory (no run.json and no results/)"
        )
    meta = _read_meta(meta_file)
    results = _read_results(run_dir, _scan_schema(raw_response))  # parts without run.json are refused
    if not meta_file.is_file():
        raise InputError(f"{run_dir}: not a batchjudge run directory (no run.json)")
    return RunData(path=run_dir, meta=scrub(meta), results=_scrubbed(results))


def _in_store(path: str | Path) -> bool:
    return is_url(path) and split_url(os.fspath(path))[0] != "file"


def _load_stored(url: str, raw_response: bool) -> RunData:
    """:func:`load_run` of a run directory in object storage (read the same way: every part
    checked to be the run's)."""
    run_dir = run_dir_at(url)
    try:
        meta = run_dir.read_meta()
    except CheckpointError as exc:
        raise InputError(str(exc)) from exc
    if meta is None:
        raise InputError(f"{run_dir.path}: not a batchjudge run directory (no run.json)")
    results = _parts_frame(run_dir, ObjectPath(run_dir.path) / "results", _scan_schema(raw_response))
    return RunData(path=ObjectPath(run_dir.path), meta=scrub(meta), results=_scrubbed(results))


def _read_meta(meta_file: Path) -> dict[str, Any]:
    if not meta_file.is_file():
        return {}
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_file}: unreadable run metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(f"{meta_file}: expected a JSON object")
    check_schema_version(meta, meta_file)
    return meta


def _scan_schema(raw_response: bool) -> dict[str, pl.DataType]:
    """The result columns as polars reads them: integers widened to Int64 and floats to
    Float64, so parts written with narrower (older or foreign) types still load."""
    schema: dict[str, pl.DataType] = {}
    for field in RESULT_SCHEMA:
        if field.name in _LARGE_COLUMNS and not raw_response:
            continue
        if pa.types.is_integer(field.type):
            schema[field.name] = pl.Int64()
        elif pa.types.is_floating(field.type):
            schema[field.name] = pl.Float64()
        else:
            schema[field.name] = pl.String()
    return schema


def _read_results(run_dir: Path, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return _parts_frame(RunDir(run_dir), run_dir / "results", schema)


def _parts_frame(look: RunDir, results_dir: Path | ObjectPath, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    try:
        parts = look.verified_parts()  # a look: no lock taken, nothing written
        tables = [(part, read_part(part, list(schema))) for part in parts]
    except CheckpointError as exc:
        raise InputError(str(exc)) from exc
    if not tables:
        return pl.DataFrame(schema=schema)
    frame = pl.concat([_conform(part, table, schema) for part, table in tables], how="vertical")
    repeated = frame.filter(pl.col("row_id").is_duplicated())["row_id"].unique(maintain_order=True)
    if repeated.len():
        raise InputError(
            f"{results_dir}: {repeated.len()} row id(s) have more than one result (e.g. "
            f"{repeated[0]!r}): a part was copied or restored twice; remove the extra part(s) "
            "(batchjudge run on this directory names them)"
        )
    return frame


def _scrubbed(results: pl.DataFrame) -> pl.DataFrame:
    """``results`` with the server's text scrubbed. One vectorised search for the scrubber's
    needles finds the few values it could change; only those go through it."""
    scrubber = default_scrubber()
    needles = list(scrubber.needles)
    scrubbed: list[pl.Series] = []
    for name in SERVER_TEXT_COLUMNS:
        if name not in results.columns:
            continue
        column = results[name]
        suspects = column.str.contains_any(needles, ascii_case_insensitive=True).fill_null(False).arg_true()
        if suspects.len():
            values = [scrubber.text(v) for v in column.gather(suspects).to_list()]
            scrubbed.append(column.clone().scatter(suspects, values))
    return results.with_columns(scrubbed) if scrubbed else results


def _conform(part: PartFile, table: pa.Table, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """One part as a frame of ``schema``: absent columns null, integers and floats widened, so
    parts written with narrower (older or foreign) types still load."""
    frame = pl.from_arrow(table.replace_schema_metadata(None))  # a flipped bit there (unused) makes polars panic
    assert isinstance(frame, pl.DataFrame)
    try:
        return frame.select([
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype, strict=True).alias(name)
            for name, dtype in schema.items()
        ])
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{part}: unreadable results part ({first_line(exc)})") from exc


def input_texts(run: RunData, row_ids: Collection[str]) -> dict[str, tuple[str, str]]:
    """``{row_id: (premise, hypothesis)}`` for ``row_ids``, read back from the run's inputs.

    Only possible while the inputs named in ``run.json`` still exist (paths as given to
    ``batchjudge run``, resolved from the current directory); returns what it finds, ``{}``
    when the inputs are gone or changed shape. Stops reading once every id is found.
    """
    from batchjudge.engine.source import open_source

    inputs = run.config.get("inputs")
    wanted = set(row_ids)
    if not wanted or not isinstance(inputs, list) or not inputs:
        return {}
    found: dict[str, tuple[str, str]] = {}
    try:
        source = open_source(inputs, run.config.get("columns"))
        for batch in source.batches():
            for row in batch:
                if row.row_id in wanted and row.premise is not None and row.hypothesis is not None:
                    found[row.row_id] = (row.premise, row.hypothesis)
            if len(found) == len(wanted):
                break
    except BatchJudgeError:
        return found  # inputs moved, deleted or edited since the run: show what was read
    return found
