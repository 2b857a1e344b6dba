"""The trace records both sinks write: one ``call`` per judged row, one ``evaluation`` per run.

A record is a plain JSON-ready dict, so the local JSONL sink writes exactly what the Weave sink
logs: the local file is a faithful offline copy of the Weave trace. Records are built (and
scrubbed) by the tracer's worker, never on the engine's event loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from batchjudge.core.results import STATUS_OK, FinishedRow, RowResult
from batchjudge.core.scrub import Scrubber

__all__ = [
    "JUDGE_OP",
    "build_call_record",
    "build_evaluation_record",
    "build_op_record",
]

JUDGE_OP = "batchjudge.judge"
"""The op name every judged row is traced as."""


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).isoformat()


def _scores(result: RowResult) -> dict[str, bool]:
    """Per-row scores: ``parsed`` always, ``correct`` when the row is labelled and judged."""
    scores = {"parsed": result.status == STATUS_OK}
    target, verdict = result.target, result.verdict
    if target is not None and verdict is not None:
        scores["correct"] = int(verdict) == int(target)
    return scores


def build_call_record(
    record: FinishedRow, *, run_name: str, ended_at: float, scrub: Scrubber
) -> dict[str, Any]:
    """The ``call`` record of one finished row.

    ``ended_at`` (epoch seconds) is when the engine finished the row; the call starts
    ``latency_ms`` earlier, so the trace shows the provider's real latency.
    """
    result = record.result
    latency_ms = float(result.latency_ms or 0.0)
    prompt_tokens = int(result.prompt_tokens or 0)
    completion_tokens = int(result.completion_tokens or 0)
    model = result.model or ""
    call = {
        "type": "call",
        "op": JUDGE_OP,
        "run": run_name,
        "row_id": record.row_id,
        "started_at": _iso(ended_at - latency_ms / 1000.0),
        "ended_at": _iso(ended_at),
        "inputs": {
            "premise": record.premise,
            "hypothesis": record.hypothesis,
            "messages": list(record.messages),
            "model": model,
        },
        "output": {
            "verdict": result.verdict,
            "score": result.score,
            "reason": result.reason,
            "raw_response": result.raw_response,
            "model": model,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
        "status": result.status,
        "error": result.error,
        "attempts": result.attempts,
        "latency_ms": latency_ms,
        "target": result.target,
        "truncated_tokens": result.truncated_tokens,
        "scores": _scores(result),
    }
    scrubbed: dict[str, Any] = scrub(call)
    return scrubbed


def build_evaluation_record(
    *,
    run_name: str,
    run_config: dict[str, Any],
    summary: Mapping[str, Any] | None,
    counters: dict[str, int],
    scrub: Scrubber,
) -> dict[str, Any]:
    """The closing ``evaluation`` record: the run's configuration, metrics and trace counters."""
    evaluation = {
        "type": "evaluation",
        "run": run_name,
        "ended_at": dt.datetime.now(tz=dt.UTC).isoformat(),
        "config": run_config,
        "summary": summary or {},
        "trace_counters": counters,
    }
    scrubbed: dict[str, Any] = scrub(evaluation)
    return scrubbed


def build_op_record(
    *,
    name: str,
    inputs: dict[str, Any],
    output: Any,
    error: str | None,
    started_at: float,
    ended_at: float,
    scrub: Scrubber,
) -> dict[str, Any]:
    """An ``op`` record for a one-off operation (a fine-tuning export or launch)."""
    op = {
        "type": "op",
        "op": name,
        "started_at": _iso(started_at),
        "ended_at": _iso(ended_at),
        "inputs": inputs,
        "output": output,
        "status": "error" if error is not None else "ok",
        "error": error,
    }
    scrubbed: dict[str, Any] = scrub(op)
    return scrubbed
