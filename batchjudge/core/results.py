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
from types import UnionType
from typing import Any, Final, Literal, TypedDict, Union, get_args, get_origin, get_type_hints

from batchjudge.core.types import Message

__all__ = [
    "ENGINE_TEXT_COLUMNS",
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
    "server_text_columns",
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
ENGINE_TEXT_COLUMNS: frozenset[str] = frozenset({"row_id", "status"})
"""The text columns the engine writes itself (the input's key, one of :data:`STATUSES`)."""


def server_text_columns(result_type: type[Any] = RowResult) -> tuple[str, ...]:
    """The fields of ``result_type`` typed ``str`` (or ``str | None``) that are not
    :data:`ENGINE_TEXT_COLUMNS`: text that a server or a user wrote, so the scrubber's.

    A rule rather than a list, so a text column added later is scrubbed without anyone
    remembering to: ``model``, ``reason``, ``raw_response`` and ``error`` all come from a
    server that may echo the request's credentials into them.
    """
    hints = get_type_hints(result_type)
    return tuple(
        f.name for f in fields(result_type) if f.name not in ENGINE_TEXT_COLUMNS and _is_text(hints[f.name])
    )


def _is_text(hint: Any) -> bool:
    return hint is str or (get_origin(hint) in (Union, UnionType) and str in get_args(hint))


SERVER_TEXT_COLUMNS: tuple[str, ...] = server_text_columns()
"""Result columns holding text a server or user sent (:func:`server_text_columns`): scrubbed
before they leave the engine, and again when a report reads them."""


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
