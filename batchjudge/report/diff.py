"""Where two judges disagree: the rows both judged ``ok`` with different verdicts.

``batchjudge compare A B --diff`` lists them (terminal and ``--json``) and ``--diff-out FILE``
writes them all. Each row carries its id, the true label when there is one, each judge's
verdict, score and reason, which judge was right, and the summary and document when the
inputs named in the baseline's ``run.json`` are readable here (else the candidate's).
Rows keep the baseline's order. With more than two runs, each is diffed against the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from batchjudge.core.results import STATUS_OK
from batchjudge.report.loading import RunData, input_texts
from batchjudge.report.rows import write_tables

__all__ = ["DIFF_SCHEMA", "Disagreements", "disagreements", "write_disagreements"]

DIFF_SCHEMA = pa.schema(
    [
        pa.field("baseline_run", pa.string()),
        pa.field("candidate_run", pa.string()),
        pa.field("row_id", pa.string()),
        pa.field("target", pa.int8()),
        pa.field("baseline_verdict", pa.int8()),
        pa.field("candidate_verdict", pa.int8()),
        pa.field("right", pa.string()),
        pa.field("baseline_score", pa.float64()),
        pa.field("candidate_score", pa.float64()),
        pa.field("baseline_reason", pa.string()),
        pa.field("candidate_reason", pa.string()),
        pa.field("hypothesis", pa.string()),
        pa.field("premise", pa.string()),
    ]
)
"""The columns of a ``--diff-out`` file. ``right`` is ``baseline`` or ``candidate`` (the
judge that matched the label) and null for unlabelled rows; the texts are null when the
inputs are not readable here."""


@dataclass(frozen=True)
class Disagreements:
    """Every row two runs judged ok with different verdicts (:data:`DIFF_SCHEMA` columns)."""

    baseline: str
    candidate: str
    shared_ok: int
    """Rows both runs judged ok: the disagreements are counted among these."""
    rows: pl.DataFrame
    texts_available: bool

    def as_dict(self, limit: int | None = None) -> dict[str, Any]:
        """JSON-able: counts and the first ``limit`` rows (all when ``None``)."""
        shown = self.rows if limit is None else self.rows.head(limit)
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "shared_ok": self.shared_ok,
            "n_disagreements": self.rows.height,
            "texts_available": self.texts_available,
            "rows": shown.drop("baseline_run", "candidate_run").to_dicts(),
        }


def disagreements(
    first: RunData, second: RunData, labels: tuple[str, str] | None = None, *, texts: bool = True
) -> Disagreements:
    """The rows ``first`` and ``second`` both judged ok with different verdicts.

    ``labels`` name the runs (default: their directory names); ``texts`` reads the summary
    and document of each such row back from the inputs (streamed, stopping once all are found).
    """
    name_a, name_b = labels or (first.label, second.label)
    columns = ["row_id", "target", "verdict", "score", "reason"]
    ok = pl.col("status") == STATUS_OK
    left = first.results.filter(ok).select(columns)
    right = second.results.filter(ok).select(columns)
    shared = left.join(right, on="row_id", how="inner", suffix="_b", maintain_order="left")
    differ = shared.filter(pl.col("verdict") != pl.col("verdict_b"))
    target = pl.coalesce("target", "target_b")
    frame = differ.select(
        pl.lit(name_a).alias("baseline_run"),
        pl.lit(name_b).alias("candidate_run"),
        "row_id",
        target.alias("target"),
        pl.col("verdict").alias("baseline_verdict"),
        pl.col("verdict_b").alias("candidate_verdict"),
        pl.when(target.is_null()).then(None)
        .when(pl.col("verdict") == target).then(pl.lit("baseline"))
        .otherwise(pl.lit("candidate")).alias("right"),
        pl.col("score").alias("baseline_score"),
        pl.col("score_b").alias("candidate_score"),
        pl.col("reason").alias("baseline_reason"),
        pl.col("reason_b").alias("candidate_reason"),
    )  # fmt: skip
    found: dict[str, tuple[str, str]] = {}
    if texts and frame.height:
        ids = frame["row_id"].to_list()
        found = input_texts(first, ids) or input_texts(second, ids)
    frame = frame.with_columns(
        pl.col("row_id").replace_strict(
            {k: v[1] for k, v in found.items()}, default=None, return_dtype=pl.String
        ).alias("hypothesis"),
        pl.col("row_id").replace_strict(
            {k: v[0] for k, v in found.items()}, default=None, return_dtype=pl.String
        ).alias("premise"),
    )  # fmt: skip
    return Disagreements(name_a, name_b, shared.height, frame, bool(found))


def write_disagreements(diffs: list[Disagreements], path: str | Path) -> int:
    """Write every disagreement of ``diffs`` to ``path`` (format by suffix); return the rows."""
    tables = (d.rows.to_arrow().cast(DIFF_SCHEMA) for d in diffs)
    return write_tables(Path(path), DIFF_SCHEMA, tables)
