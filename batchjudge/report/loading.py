"""Reading a finished (or interrupted) run directory back for reporting.

A run directory holds ``run.json`` (configuration, fingerprint, counts) and
``results/*.parquet`` parts (schema: :mod:`batchjudge.engine.schema`). Parts are read in name
order; should a row appear in several parts (a failed row re-sent by ``--retry-failed``), the
last part's result wins. Missing ``run.json`` keys and columns absent from older parts are
tolerated (read as empty); a directory with neither file is not a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchjudge.engine.schema import RESULT_SCHEMA
from batchjudge.errors import InputError

__all__ = ["RunData", "load_run"]

_SKIPPED_COLUMNS = frozenset({"raw_response"})
"""Not needed for metrics and the largest column: left on disk."""


@dataclass(frozen=True)
class RunData:
    """One run as the report sees it: its metadata and one result row per input row."""

    path: Path
    meta: dict[str, Any]
    """``run.json`` as written by the engine (``{}`` when the file is absent)."""
    results: pl.DataFrame

    @property
    def config(self) -> dict[str, Any]:
        """``meta["config"]`` when it is an object, else ``{}``."""
        config = self.meta.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def label(self) -> str:
        """A short name for tables: the directory name."""
        return self.path.name or str(self.path)


def load_run(path: str | Path) -> RunData:
    """Load ``path`` as a run directory; InputError with one clear line when it is not one."""
    run_dir = Path(path)
    if not run_dir.exists():
        raise InputError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory (expected a run directory)")
    meta_file = run_dir / "run.json"
    results_dir = run_dir / "results"
    if not meta_file.is_file() and not results_dir.is_dir():
        raise InputError(
            f"{run_dir}: not a batchjudge run directory (no run.json and no results/)"
        )
    return RunData(path=run_dir, meta=_read_meta(meta_file), results=_read_results(results_dir))


def _read_meta(meta_file: Path) -> dict[str, Any]:
    if not meta_file.is_file():
        return {}
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_file}: unreadable run metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(f"{meta_file}: expected a JSON object")
    return meta


def _read_results(results_dir: Path) -> pl.DataFrame:
    wanted = [f for f in RESULT_SCHEMA if f.name not in _SKIPPED_COLUMNS]
    schema = pa.schema(wanted)
    parts = (
        sorted(p for p in results_dir.glob("*.parquet") if not p.name.startswith("."))
        if results_dir.is_dir()
        else []
    )
    tables = [_read_part(part, schema) for part in parts]
    frame = pl.from_arrow(pa.concat_tables(tables) if tables else schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.unique(subset="row_id", keep="last", maintain_order=True)


def _read_part(part: Path, schema: pa.Schema) -> pa.Table:
    """One part, reduced to ``schema``: absent columns become nulls, types are cast."""
    try:
        available = set(pq.read_schema(part).names)
        if "row_id" not in available or "status" not in available:
            raise InputError(f"{part}: not a results part (no row_id/status column)")
        table = pq.read_table(part, columns=[n for n in schema.names if n in available])
        columns = [
            table.column(f.name).cast(f.type)
            if f.name in available
            else pa.nulls(table.num_rows, f.type)
            for f in schema
        ]
    except InputError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{part}: unreadable results part ({exc})") from exc
    return pa.Table.from_arrays(columns, schema=schema)
