"""The most frequent error messages of a run's failed rows, with their counts.

A run where rows failed says why in the summary and the report, not only in the Parquet
``error`` column: ``HTTP 400: Invalid model`` on 100 rows is read at a glance.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from batchjudge.core.results import STATUS_FAILED
from batchjudge.engine.parts import list_parts

__all__ = ["SHOWN_ERRORS", "run_top_errors", "top_errors"]

SHOWN_ERRORS = 3
"""Error messages the summary and the report show (most frequent first)."""


def top_errors(results: pl.DataFrame, n: int = SHOWN_ERRORS) -> list[dict[str, object]]:
    """``[{"error": message, "rows": count}, ...]``: the ``n`` most frequent ``error`` values
    of the failed rows of ``results``, most frequent first (ties by message)."""
    failed = results.lazy().filter(pl.col("status") == STATUS_FAILED).select(pl.col("error").fill_null("(no message)"))
    return _counted(failed, n)


def run_top_errors(run_dir: str | os.PathLike[str], n: int = SHOWN_ERRORS) -> list[dict[str, object]]:
    """:func:`top_errors` of a run directory's results parts, reading two columns only (what
    the run summary shows once a run ends)."""
    parts = [os.fspath(p) for p in list_parts(Path(run_dir) / "results")]
    if not parts:
        return []
    failed = (pl.scan_parquet(parts).select("status", "error").filter(pl.col("status") == STATUS_FAILED)
              .select(pl.col("error").fill_null("(no message)")))  # fmt: skip
    return _counted(failed, n)


def _counted(errors: pl.LazyFrame, n: int) -> list[dict[str, object]]:
    counted = (errors.group_by("error").agg(pl.len().alias("rows"))
               .sort(["rows", "error"], descending=[True, False]).head(n).collect())  # fmt: skip
    return [{"error": e, "rows": int(r)} for e, r in zip(counted["error"], counted["rows"], strict=True)]
