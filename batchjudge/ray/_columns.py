"""The Arrow tables that travel between the driver, the read tasks and the judging workers.

Read tasks send input rows as they come out of the project's source (key, texts, label, and
the reason a row cannot be judged); workers send results back in the result schema (the
server's text scrubbed when nothing downstream will).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pyarrow as pa

from batchjudge.core.results import RESULT_COLUMNS, RowResult, Status, result_columns
from batchjudge.core.schema import RESULT_SCHEMA
from batchjudge.core.scrub import default_scrubber
from batchjudge.engine.source import SourceRow

__all__ = ["ROW_SCHEMA", "results_of", "results_table", "rows_of", "rows_table"]

ROW_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.string(), nullable=False),
        pa.field("premise", pa.string()),
        pa.field("hypothesis", pa.string()),
        pa.field("target", pa.int8()),
        pa.field("problem", pa.string()),
    ]
)
"""One :class:`~batchjudge.engine.source.SourceRow` per row."""


def rows_table(rows: Sequence[SourceRow]) -> pa.Table:
    """``rows`` as a :data:`ROW_SCHEMA` table."""
    return pa.Table.from_pydict(
        {name: [getattr(row, name) for row in rows] for name in ROW_SCHEMA.names}, schema=ROW_SCHEMA
    )


def rows_of(table: pa.Table) -> list[SourceRow]:
    """The rows of a :data:`ROW_SCHEMA` table."""
    return [SourceRow(**row) for row in table.select(ROW_SCHEMA.names).to_pylist()]


def results_table(results: Sequence[RowResult], *, scrubbed: bool) -> pa.Table:
    """``results`` in the result schema; with ``scrubbed`` the server's text is scrubbed (a
    user's pipeline gets it so; a run's driver leaves that to its sink, which scrubs anyway)."""
    columns = result_columns(results, scrub=default_scrubber().text if scrubbed else None)
    return pa.Table.from_pydict(columns, schema=RESULT_SCHEMA)


def results_of(table: pa.Table) -> list[RowResult]:
    """The results in a table holding the result columns (and maybe others)."""
    out: list[RowResult] = []
    for row in table.select(list(RESULT_COLUMNS)).to_pylist():
        row["status"] = cast(Status, row["status"])
        out.append(RowResult(**row))
    return out
