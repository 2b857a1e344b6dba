"""How a row's result is made from what happened to it: replies, or a reason it has none.

Shared by every judge step (online calls, batch jobs) and the reader, so that a row judged
one way or another gets exactly the same result columns.
"""

from __future__ import annotations

import orjson

from batchjudge.adapters.parsing import ParsedVerdict, aggregate_votes, parse_verdict
from batchjudge.core.results import STATUS_FAILED, RowResult
from batchjudge.core.types import JudgeReply

__all__ = ["answered_result", "failed_result"]


def failed_result(
    row_id: str,
    target: int | None,
    error: str,
    *,
    model: str,
    attempts: int = 0,
    truncated: int = 0,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> RowResult:
    """A row with no usable reply; ``error`` is ``Kind[status]: message``."""
    return RowResult(
        row_id, STATUS_FAILED, error=error, attempts=attempts, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, model=model, target=target, truncated_tokens=truncated,
    )


def answered_result(
    row_id: str,
    target: int | None,
    replies: list[JudgeReply],
    *,
    model: str,
    attempts: int,
    latency_ms: float | None = None,
    truncated: int = 0,
) -> RowResult:
    """A row with one reply (or several samples, voted on): parsed into its verdict."""
    parsed = _parse(replies)
    return RowResult(
        row_id,
        parsed.status,
        verdict=parsed.verdict,
        score=parsed.score,
        reason=parsed.reason,
        raw_response=_raw(replies),
        error=parsed.error,
        attempts=attempts,
        latency_ms=latency_ms,
        prompt_tokens=sum(r.prompt_tokens for r in replies),
        completion_tokens=sum(r.completion_tokens for r in replies),
        model=replies[-1].model or model,
        target=target,
        truncated_tokens=truncated,
    )


def _parse(replies: list[JudgeReply]) -> ParsedVerdict:
    parsed = [parse_verdict(r.text) for r in replies]
    return parsed[0] if len(parsed) == 1 else aggregate_votes(parsed)


def _raw(replies: list[JudgeReply]) -> str:
    if len(replies) == 1:
        return replies[0].text
    return orjson.dumps([r.text for r in replies]).decode()
