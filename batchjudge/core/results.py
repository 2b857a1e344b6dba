"""A row's result, as the engine passes it along and writes it: the contract of
``results/*.parquet`` (its Parquet schema is :mod:`batchjudge.core.schema`).

One :class:`RowResult` per input row, whatever happened to it: ``ok`` (a verdict),
``parse_error`` (a reply that said no verdict; the reply is kept) or ``failed`` (no usable
reply; ``error`` says why, as ``Kind[status]: message``). A :class:`FinishedRow` carries a
result with the inputs it was judged on, from the judge to the sink and on to a tracer; only
the result is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, TypedDict

from batchjudge.core.types import Message

__all__ = [
    "RESULT_COLUMNS",
    "SERVER_TEXT_COLUMNS",
    "STATUSES",
    "STATUS_FAILED",
    "STATUS_OK",
    "STATUS_PARSE_ERROR",
    "Counts",
    "FinishedRow",
    "RowResult",
    "Status",
    "result_columns",
]

Status = Literal["ok", "parse_error", "failed"]
STATUS_OK: Final = "ok"
STATUS_PARSE_ERROR: Final = "parse_error"
STATUS_FAILED: Final = "failed"
STATUSES: tuple[Status, ...] = (STATUS_OK, STATUS_PARSE_ERROR, STATUS_FAILED)


@dataclass(slots=True)
class RowResult:
    """One row's result; the fields are the result columns, in order."""

    row_id: str
    status: Status
    verdict: int | None = None
    """1 consistent, 0 inconsistent; None unless ``ok``."""
    score: float | None = None
    """P(consistent) when the judge gives one (the local judge; the vote share of samples)."""
    reason: str | None = None
    raw_response: str | None = None
    error: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None
    target: int | None = None
    truncated_tokens: int = 0


RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RowResult))
"""The result columns, in schema order."""
SERVER_TEXT_COLUMNS: tuple[str, ...] = ("reason", "raw_response", "error")
"""Result columns holding text a server sent: scrubbed before they leave the engine."""


def result_columns(results: Sequence[RowResult], *, scrub: Callable[[str], str] | None = None) -> dict[str, list[Any]]:
    """``results`` as lists by column, in schema order; with ``scrub``, the server's text
    (:data:`SERVER_TEXT_COLUMNS`) goes through it."""
    columns: dict[str, list[Any]] = {c: [getattr(r, c) for r in results] for c in RESULT_COLUMNS}
    if scrub is not None:
        for name in SERVER_TEXT_COLUMNS:
            columns[name] = [v if v is None else scrub(v) for v in columns[name]]
    return columns


@dataclass(slots=True)
class FinishedRow:
    """A result with the inputs it was judged on: what the sink writes and a tracer receives.

    ``premise``/``hypothesis`` are None for a row whose input could not be read, and for
    answers collected from a batch job (their texts are not kept beside the job).
    """

    result: RowResult
    premise: str | None = None
    hypothesis: str | None = None
    messages: tuple[Message, ...] = ()

    @property
    def row_id(self) -> str:
        return self.result.row_id


class Counts(TypedDict):
    """Results by status in a run directory, as ``run.json`` stores them."""

    ok: int
    parse_error: int
    failed: int
    done: int
    """ok + parse_error + failed."""
    total: int
    """Input rows the run covers (up to ``--limit``)."""
