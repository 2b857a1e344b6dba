"""The sink step: finished rows in; results parts, ``run.json`` and traces out.

Rows are counted as they arrive, handed to the tracer (which never blocks), and buffered; every
``flush_rows`` rows or ``flush_seconds`` seconds the buffer becomes one atomically written
Parquet part and ``run.json`` is rewritten with the new counts. Both writes, and the scrubbing
of the text columns that came from the server (``raw_response``, ``reason``, ``error``), run in
a worker thread, never on the event loop. A crash loses at most the buffer, whose rows are
sent again on resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from batchjudge.core.results import (
    STATUS_FAILED,
    STATUS_OK,
    Counts,
    FinishedRow,
    RowResult,
    result_columns,
)
from batchjudge.core.scrub import default_scrubber
from batchjudge.core.tracer import Tracer
from batchjudge.engine.checkpoint import RunDir
from batchjudge.engine.record import RunRecord, Usage, now_iso
from batchjudge.engine.stats import RunStats
from batchjudge.engine.streams import receive

__all__ = ["ResultSink"]


class ResultSink:
    """Writes one run's finished rows into ``run_dir``; see the module docstring.

    ``counts_before`` are the results already in the run directory when this session began;
    ``record`` is ``run.json``'s content, whose counts the sink keeps current.
    """

    def __init__(
        self,
        run_dir: RunDir,
        record: RunRecord,
        stats: RunStats,
        *,
        counts_before: dict[str, int],
        tracer: Tracer | None = None,
        flush_rows: int = 2000,
        flush_seconds: float = 5.0,
    ) -> None:
        self.run_dir = run_dir
        self.record = record
        self.stats = stats
        self.tracer = tracer
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._before = counts_before
        self._tokens_before = Usage(**record.tokens)
        self._buffer: list[RowResult] = []
        self._writing = anyio.Lock()

    @property
    def counts(self) -> Counts:
        """Results by status, this session and earlier ones."""
        ok = self._before.get(STATUS_OK, 0) + self.stats.ok
        parse_error = self._before.get("parse_error", 0) + self.stats.parse_error
        failed = self._before.get(STATUS_FAILED, 0) + self.stats.failed
        done = ok + parse_error + failed
        return Counts(ok=ok, parse_error=parse_error, failed=failed, done=done, total=self.stats.total)

    def add(self, row: FinishedRow) -> None:
        """Count, trace and buffer one finished row (no I/O)."""
        result = row.result
        self._buffer.append(result)
        if result.status == STATUS_OK:
            self.stats.ok += 1
        elif result.status == STATUS_FAILED:
            self.stats.failed += 1
        else:
            self.stats.parse_error += 1
        if self.tracer is not None:
            self.tracer.submit(row)

    @property
    def due(self) -> bool:
        """Whether the buffer holds enough rows to be written now."""
        return len(self._buffer) >= self.flush_rows

    async def flush(self) -> None:
        """Write the buffer as one part, then ``run.json`` (both in a worker thread).

        Safe to call from another task while :meth:`run` works (a stopping run flushes at
        once): writes are serialised. When a write fails (a full disk) its rows are dropped
        from the buffer and the error goes up: they have no result, and the next run sends
        them again.
        """
        async with self._writing:
            rows, self._buffer = self._buffer, []
            if rows:
                await anyio.to_thread.run_sync(self._write_part, rows)
                self.stats.flushed_parts += 1
                await self.write_record()

    async def write_record(self) -> None:
        """Rewrite ``run.json`` with the current counts (and the emulator, once it answered)."""
        self.record.counts = self.counts
        if self.stats.emulator:
            self.record.endpoint["emulator"] = True
        self.record.tokens = Usage(prompt=self._tokens_before["prompt"] + self.stats.prompt_tokens,
                                   completion=self._tokens_before["completion"] + self.stats.completion_tokens)
        self.record.limits = self.stats.limits
        self.record.updated_at = now_iso()
        await anyio.to_thread.run_sync(self.run_dir.write_meta, self.record.to_json())

    def _write_part(self, rows: Sequence[RowResult]) -> None:
        self.run_dir.write_part(result_columns(rows, scrub=default_scrubber().text))

    async def run(self, inbox: MemoryObjectReceiveStream[FinishedRow]) -> None:
        """Consume ``inbox`` until it ends; flush by size as rows arrive and by time from a
        timer task (no timeout per row: at hundreds of rows a second one costs more than the
        row); flush the rest at the end, even when cancelled."""
        try:
            async with inbox, anyio.create_task_group() as timer:
                timer.start_soon(self._flush_every)
                while True:
                    try:
                        row = await receive(inbox)
                    except anyio.EndOfStream:
                        break
                    self.add(row)
                    if self.due:
                        await self.flush()
                timer.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.flush()

    async def _flush_every(self) -> None:
        while True:
            await anyio.sleep(self.flush_seconds)
            await self.flush()
