"""The reader step: input rows in, work out (a rendered request per row), in bounded batches.

It streams the validated :class:`~batchjudge.engine.source.Source`, skips rows that already
have a result (the run directory's done-set) and stops at ``limit``; each remaining row is
rendered into a :class:`~batchjudge.core.types.JudgeRequest` by the prompt adapter. A row
that cannot be judged (a null premise, a label that is not 0/1, a prompt that cannot render)
does not stop anything: it becomes its own failed result here and goes straight to the sink.

:meth:`Reader.batches` is a plain iterator (reading Parquet and rendering are blocking work),
so any executor can drive it: :meth:`Reader.run` drives it from a worker thread into the
single-process run's streams, and a distributed engine reads the pending rows with
:func:`pending_rows` and builds a :class:`Preparer` (what the reader renders rows with) in
each worker for the rows of its own blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectSendStream

from batchjudge.adapters.prompts import PromptAdapter
from batchjudge.core.results import FinishedRow
from batchjudge.core.types import JudgeRequest
from batchjudge.engine.checkpoint import key_hashes_in_order
from batchjudge.engine.outcomes import failed_result
from batchjudge.engine.source import Source, SourceRow
from batchjudge.engine.streams import send

__all__ = ["READ_BATCH", "Preparer", "Reader", "RequestSettings", "Work", "pending", "pending_rows"]

READ_BATCH = 512
"""Rows read, filtered and rendered at a time."""


@dataclass(frozen=True, slots=True)
class RequestSettings:
    """What every request of a run shares besides its messages."""

    model: str
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = None
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Work:
    """One row ready to judge: the input row, its request, and document tokens cut to fit."""

    row: SourceRow
    request: JudgeRequest
    truncated: int = 0


def pending(rows: Sequence[SourceRow], done: np.ndarray) -> list[SourceRow]:
    """``rows`` without those whose key hash is in ``done`` (sorted, unique)."""
    if not done.size:
        return list(rows)
    keep = ~np.isin(key_hashes_in_order(r.row_id for r in rows), done)
    return [row for row, k in zip(rows, keep, strict=True) if k]


def pending_rows(source: Source, done: np.ndarray, limit: int | None, batch_size: int) -> Iterator[list[SourceRow]]:
    """The rows of ``source`` without a result in ``done``, read ``batch_size`` input rows at
    a time (a batch may come out smaller, even empty), up to ``limit`` input rows."""
    seen = 0
    for batch in source.batches(batch_size):
        if limit is not None and seen + len(batch) > limit:
            batch = batch[: limit - seen]
        seen += len(batch)
        yield pending(batch, done)
        if limit is not None and seen >= limit:
            return


class Preparer:
    """Renders rows into :class:`Work` with the run's prompt adapter and request settings; a
    row that cannot be judged becomes its failed result instead."""

    def __init__(self, adapter: PromptAdapter, settings: RequestSettings) -> None:
        self.adapter = adapter
        self.settings = settings

    def prepare(self, row: SourceRow) -> Work | FinishedRow:
        """The row's request, or its failed result when it cannot be judged."""
        if row.problem is not None:
            return self._failed(row, f"InputError: {row.problem}")
        assert row.premise is not None and row.hypothesis is not None
        try:
            rendered = self.adapter.render(row.premise, row.hypothesis)
        except Exception as exc:  # noqa: BLE001 - a row that cannot be rendered fails alone
            return self._failed(row, f"{type(exc).__name__}: {exc}")
        s = self.settings
        request = JudgeRequest(
            row_id=row.row_id,
            messages=rendered.messages,
            premise=row.premise,
            hypothesis=row.hypothesis,
            model=s.model,
            temperature=s.temperature,
            max_tokens=s.max_tokens,
            seed=s.seed,
            response_format=s.response_format,
            prompt_tokens=rendered.prompt_tokens,
        )
        return Work(row, request, rendered.truncated_tokens)

    def _failed(self, row: SourceRow, error: str) -> FinishedRow:
        result = failed_result(row.row_id, row.target, error, model=self.settings.model)
        return FinishedRow(result, row.premise, row.hypothesis)


class Reader:
    """Turns a source's rows into :class:`Work` (or failed results); see the module docstring.

    ``done`` holds the 64-bit key hashes of rows that already have a result (sorted, unique).
    """

    def __init__(
        self,
        source: Source,
        adapter: PromptAdapter,
        settings: RequestSettings,
        *,
        done: np.ndarray | None = None,
        limit: int | None = None,
    ) -> None:
        self.source = source
        self.preparer = Preparer(adapter, settings)
        self.done = done if done is not None else np.empty(0, dtype=np.uint64)
        self.limit = limit

    def batches(self, batch_size: int = READ_BATCH) -> Iterator[list[Work | FinishedRow]]:
        """The pending rows, prepared, ``batch_size`` input rows at a time, up to ``limit``."""
        for rows in pending_rows(self.source, self.done, self.limit, batch_size):
            yield [self.preparer.prepare(row) for row in rows]

    async def run(self, work: MemoryObjectSendStream[Work], results: MemoryObjectSendStream[FinishedRow]) -> None:
        """Feed ``work`` and ``results`` from :meth:`batches`, read in a worker thread;
        closes both streams when done, and stops early once the judge stops taking work."""
        batches = self.batches()
        async with work, results:
            while (batch := await anyio.to_thread.run_sync(next, batches, None)) is not None:
                for item in batch:
                    try:
                        await (send(work, item) if isinstance(item, Work) else send(results, item))
                    except anyio.BrokenResourceError:  # the judge stopped: nobody wants more
                        return
