"""The tracer the engine talks to: a bounded queue drained by one daemon thread.

``submit`` runs on the engine's event loop for every finished row, so it does the least
possible: a sampling check and a non-blocking ``put``. A full queue drops the row and counts
it. Everything else (building and scrubbing records, writing, network) happens on the
worker thread, and any failure there is counted, logged once, and never raised.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

import anyio.to_thread

from batchjudge.core.results import FinishedRow

from ._records import build_call_record, build_evaluation_record
from ._sampling import is_sampled
from batchjudge.core.scrub import Scrubber, default_scrubber, scrubbed_logger
from ._sink import Sink

__all__ = ["BackgroundTracer"]

logger = scrubbed_logger(__name__)

_BATCH = 256
"""Most records handed to the sink in one ``write``."""


@dataclass(frozen=True, slots=True)
class _Close:
    summary: Mapping[str, Any] | None


class BackgroundTracer:
    """Implements :class:`batchjudge.core.types.Tracer` on top of a :class:`Sink`.

    Counters: ``sent`` (rows the sink accepted), ``dropped`` (queue full, or left behind
    when closing timed out), ``errors`` (records the sink failed on, the closing evaluation
    record included), ``sampled_out`` (rows ``sample_rate`` skipped).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        run_name: str,
        run_config: dict[str, Any],
        sample_rate: float = 1.0,
        queue_size: int = 10_000,
        close_timeout: float = 300.0,
        scrub: Scrubber | None = None,
    ) -> None:
        self._sink = sink
        self._run_name = run_name
        self._run_config = run_config
        self._sample_rate = sample_rate
        self._close_timeout = close_timeout
        self._scrub = scrub if scrub is not None else default_scrubber()
        self._queue: queue.Queue[tuple[FinishedRow, float] | _Close] = queue.Queue(
            queue_size
        )
        # Each counter has a single writer: the event loop (dropped, sampled_out) or the
        # worker (sent, errors), so no lock is needed.
        self._sent = 0
        self._errors = 0
        self._dropped = 0
        self._sampled_out = 0
        self._closing = False
        self._warned = False
        self._thread = threading.Thread(
            target=self._work, name=f"batchjudge-tracer-{run_name}", daemon=True
        )
        self._thread.start()

    def submit(self, record: FinishedRow) -> None:
        """Queue ``record`` for tracing; never blocks, never raises."""
        if not is_sampled(record.row_id, self._sample_rate):
            self._sampled_out += 1
            return
        if self._closing:
            self._dropped += 1
            return
        try:
            self._queue.put_nowait((record, time.time()))
        except queue.Full:
            self._dropped += 1

    async def aclose(self, summary: Mapping[str, Any] | None = None) -> dict[str, int]:
        """Drain the queue, log ``summary`` as the run's evaluation, close the sink.

        Waits at most ``close_timeout`` seconds (in a thread, so the event loop stays free);
        rows still queued after that are counted as dropped. Calling it again is harmless.
        """
        if not self._closing:
            self._closing = True
            self._dropped += await anyio.to_thread.run_sync(
                self._close_blocking, summary, abandon_on_cancel=True
            )
        return self.counters()

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters."""
        return {
            "sent": self._sent,
            "dropped": self._dropped,
            "errors": self._errors,
            "sampled_out": self._sampled_out,
        }

    def _close_blocking(self, summary: Mapping[str, Any] | None) -> int:
        """Hand the worker the close marker and wait; return how many rows it left queued."""
        deadline = time.monotonic() + self._close_timeout
        queued_close = 1
        try:
            self._queue.put(_Close(summary), timeout=self._close_timeout)
        except queue.Full:
            queued_close = 0
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return 0
        logger.warning(
            "tracing: gave up waiting for the trace sink after %g s",
            self._close_timeout,
        )
        return max(0, self._queue.qsize() - queued_close)

    # -- worker thread -------------------------------------------------------------------

    def _work(self) -> None:
        broken = False
        try:
            self._sink.open()
        except Exception as exc:  # noqa: BLE001 - a tracing failure must never fail a run
            broken = True
            self._warn(exc)
        while True:
            batch, close = self._take_batch()
            if batch:
                self._write(batch, broken)
            if close is not None:
                if broken:
                    self._errors += 1  # the evaluation record is lost too
                else:
                    self._finish(close.summary)
                return

    def _take_batch(self) -> tuple[list[tuple[FinishedRow, float]], _Close | None]:
        batch: list[tuple[FinishedRow, float]] = []
        item = self._queue.get()
        while True:
            if isinstance(item, _Close):
                return batch, item
            batch.append(item)
            if len(batch) >= _BATCH:
                return batch, None
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, None

    def _write(self, batch: list[tuple[FinishedRow, float]], broken: bool) -> None:
        if broken:
            self._errors += len(batch)
            return
        try:
            records = [
                build_call_record(
                    r, run_name=self._run_name, ended_at=t, scrub=self._scrub
                )
                for r, t in batch
            ]
            failed = self._sink.write(records)
        except Exception as exc:  # noqa: BLE001 - counted, never raised
            failed = len(batch)
            self._warn(exc)
        self._sent += len(batch) - failed
        self._errors += failed

    def _finish(self, summary: Mapping[str, Any] | None) -> None:
        try:
            evaluation = build_evaluation_record(
                run_name=self._run_name,
                run_config=self._run_config,
                summary=summary,
                counters=self.counters(),
                scrub=self._scrub,
            )
            late_failures = self._sink.finish(evaluation)
        except Exception as exc:  # noqa: BLE001 - counted, never raised
            self._errors += 1
            self._warn(exc)
            return
        self._sent -= min(late_failures, self._sent)
        self._errors += late_failures

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "tracing: %s (further tracing errors are only counted)",
                self._scrub(str(exc)),
            )
