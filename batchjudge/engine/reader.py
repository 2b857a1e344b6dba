"""The reader step: input rows in, work out (a rendered request per row), in bounded batches.

It streams the validated :class:`~batchjudge.engine.source.Source`, skips rows that already
have a result (the run directory's done-set) and stops at ``limit``; each remaining row is
rendered into a :class:`~batchjudge.core.types.JudgeRequest` by the prompt adapter. A row
that cannot be judged (a null premise, a label that is not 0/1, a prompt that cannot render)
does not stop anything: it becomes its own failed result here and goes straight to the sink.

:meth:`Reader.batches` is a plain iterator (reading Parquet and rendering are blocking work),
so any executor can drive it: :meth:`Reader.run` drives it from a worker thread into the
single-process run's streams, and a distributed engine can call :meth:`Reader.prepare` on the
rows of its own blocks.
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

__all__ = ["READ_BATCH", "Reader", "RequestSettings", "Work"]

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
        self.adapter = adapter
        self.settings = settings
        self.done = done if done is not None else np.empty(0, dtype=np.uint64)
        self.limit = limit

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

    def pending(self, rows: Sequence[SourceRow]) -> list[SourceRow]:
        """``rows`` without those that already have a result."""
        if not self.done.size:
            return list(rows)
        keep = ~np.isin(key_hashes_in_order(r.row_id for r in rows), self.done)
        return [row for row, k in zip(rows, keep, strict=True) if k]

    def batches(self, batch_size: int = READ_BATCH) -> Iterator[list[Work | FinishedRow]]:
        """The pending rows, prepared, ``batch_size`` input rows at a time, up to ``limit``."""
        seen = 0
        for batch in self.source.batches(batch_size):
            if self.limit is not None and seen + len(batch) > self.limit:
                batch = batch[: self.limit - seen]
            seen += len(batch)
            yield [self.prepare(row) for row in self.pending(batch)]
            if self.limit is not None and seen >= self.limit:
                return

    async def run(self, work: MemoryObjectSendStream[Work], results: MemoryObjectSendStream[FinishedRow]) -> None:
        """Feed ``work`` and ``results`` from :meth:`batches`, read in a worker thread;
        closes both streams when done, and stops early once the judge stops taking work."""
        batches = self.batches()
        async with work, results:
            while (batch := await anyio.to_thread.run_sync(next, batches, None)) is not None:
                for item in batch:
                    try:
                        await (work.send(item) if isinstance(item, Work) else results.send(item))
                    except anyio.BrokenResourceError:  # the judge stopped: nobody wants more
                        return
