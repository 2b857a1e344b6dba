"""Which rows of a run are summaries of the same document: the pairs pairwise accuracy counts.

A run's results hold row ids, not texts, so the pairs are read back from the run's inputs
(while they exist, as :func:`~batchjudge.report.loading.input_texts` does): a ``pair_id``
or ``group`` column when the input has one (``batchjudge data perturb`` writes
``pair_id``), else the premise itself, so rows sharing a document pair up. A ``kind``
column, when present, names each row's kind of error, for the figure per kind.
"""

from __future__ import annotations

import polars as pl

from batchjudge.errors import BatchJudgeError
from batchjudge.report.loading import RunData

__all__ = ["GROUP_COLUMNS", "KIND_COLUMN", "input_groups"]

GROUP_COLUMNS = ("pair_id", "group")
"""Input columns that name a row's pair or group, in order of preference."""
KIND_COLUMN = "kind"


def _frame(path: str, fmt: str, wanted: list[str] | None) -> pl.DataFrame:
    """The input file's columns ``wanted`` (all when None)."""
    if fmt == "parquet":
        return pl.read_parquet(path, columns=wanted)
    frame = pl.read_ndjson(path) if fmt == "json" else pl.read_csv(path, infer_schema=False)
    return frame if wanted is None else frame.select(wanted)


def input_groups(run: RunData) -> tuple[pl.DataFrame, str] | None:
    """``(frame, origin)``: a frame of ``row_id``, ``group`` and ``kind`` (null without a kind
    column) for every input row, and where the groups came from (a column name, or
    ``"premise"``); None when the run's inputs are gone, changed or unreadable."""
    from batchjudge.engine.source import open_source, row_key

    inputs = run.config.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return None
    frames: list[pl.DataFrame] = []
    origins: set[str] = set()
    try:
        source = open_source(inputs, run.config.get("columns"))
        for file in source.files:
            path = str(file.path)
            names = set(pl.read_parquet_schema(path)) if file.fmt == "parquet" else set(_frame(path, file.fmt, None).columns)
            premise, hypothesis = source.columns["premise"], source.columns["hypothesis"]
            group = next((c for c in GROUP_COLUMNS if c in names), premise)
            origins.add(group if group in GROUP_COLUMNS else "premise")
            kind = KIND_COLUMN if KIND_COLUMN in names else None
            id_column = source.columns["id"] if "id" in source.present else None
            keys = [hypothesis, premise] if id_column is None else [id_column]
            frame = _frame(path, file.fmt, list(dict.fromkeys([*keys, group, *([kind] if kind else [])])))
            if id_column is not None:
                ids = frame[id_column].cast(pl.String)
            else:
                ids = pl.Series([
                    row_key(file.rel, i, p, h)
                    for i, (p, h) in enumerate(zip(frame[premise].to_list(), frame[hypothesis].to_list(), strict=True))
                ], dtype=pl.String)  # fmt: skip
            # A premise is a long text: rows are grouped by its hash, documents alike across files.
            groups = frame[group].cast(pl.String) if group in GROUP_COLUMNS else frame[group].hash(seed=0).cast(pl.String)
            kinds = frame[kind].cast(pl.String) if kind else pl.Series([None] * frame.height, dtype=pl.String)
            frames.append(pl.DataFrame({"row_id": ids, "group": groups, "kind": kinds}))
    except (BatchJudgeError, pl.exceptions.PolarsError, OSError):
        return None  # inputs moved, deleted or edited since the run: no pairs to count
    if not frames:
        return None
    return pl.concat(frames), "/".join(sorted(origins))
