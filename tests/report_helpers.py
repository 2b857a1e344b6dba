"""Run directories for the report and compare tests, written by the engine's own ``RunDir``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batchjudge.engine.checkpoint import RunDir
from batchjudge.core.results import RESULT_COLUMNS

__all__ = ["result_row", "write_run"]


def result_row(row_id: str, target: int | None, verdict: int | None, score: float | None = None,
               **fields: Any) -> dict[str, Any]:
    """One result row with sensible defaults: ok unless ``verdict`` is None (then failed)."""
    status = "ok" if verdict is not None else "failed"
    row: dict[str, Any] = {
        "row_id": row_id, "status": status, "verdict": verdict, "score": score,
        "reason": f"reason for {row_id}", "raw_response": "{}",
        "error": None if status == "ok" else "TransientError: 503 from the server",
        "attempts": 1, "latency_ms": 100.0, "prompt_tokens": 1000, "completion_tokens": 20,
        "model": "open-mistral-7b", "target": target, "truncated_tokens": 0,
    }  # fmt: skip
    row.update(fields)
    return row


def write_run(path: Path, parts: Sequence[Sequence[Mapping[str, Any]]],
              meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``parts`` (lists of result rows), then ``run.json`` (which records them), into
    ``path``, as the engine does."""
    with RunDir(path) as run_dir:
        for rows in parts:
            run_dir.write_part({c: [r.get(c) for r in rows] for c in RESULT_COLUMNS})
        run_dir.write_meta(meta if meta is not None else {
            "fingerprint": {"model": "open-mistral-7b"}, "created_at": "2026-11-27T12:00:00Z",
            "batchjudge_version": "0.1.0",
            "config": {"model": "open-mistral-7b", "provider": "mistral", "prompt": "zero-shot"},
        })  # fmt: skip
    return path
