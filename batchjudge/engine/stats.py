"""Counters a run keeps while it works; the CLI's progress bar and the summary read them.

Library code never prints: it counts here, and whoever renders (the CLI, a user's pipeline
through the ``progress`` callback) reads a snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypedDict

__all__ = ["RunStats", "StatsSnapshot"]


class StatsSnapshot(TypedDict):
    """:class:`RunStats` at one moment, with the derived figures; what ``RunResult.stats``
    holds and what a run's summary reports."""

    total: int
    done_before: int
    ok: int
    parse_error: int
    failed: int
    retries: int
    rate_limited: int
    prompt_tokens: int
    completion_tokens: int
    in_flight: int
    concurrency: int
    flushed_parts: int
    trace_dropped: int
    reused: int
    emulator: bool
    limits: str
    outages: int
    server_stalls: int
    finished: int
    completed: int
    elapsed_s: float
    rows_per_second: float


@dataclass(slots=True)
class RunStats:
    """Live counters of one run. ``done_before`` rows were already in the run directory."""

    total: int = 0
    done_before: int = 0
    ok: int = 0
    parse_error: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    concurrency: int = 0
    flushed_parts: int = 0
    trace_dropped: int = 0
    reused: int = 0
    """Rows answered with the reply to an identical request (no call of their own)."""
    emulator: bool = False
    """A reply said it came from the batchjudge emulator (nothing is billed)."""
    limits: str = ""
    """The pace in force and where it came from (``100/s flag, 300,000 tok/min server``)."""
    outage: str | None = None
    """While the endpoint is unreachable (the breaker is open): why, in a few words."""
    outages: int = 0
    """Outages met so far (each paused sending until the endpoint answered again)."""
    server_stalls: int = 0
    """Stalls of the server read from gaps in its replies: the sends made during each were
    paced from its end (:mod:`~batchjudge.engine.stalls`). Not counted by Ray workers."""
    stopping: bool = False
    """The run was asked to stop (SIGTERM, Ctrl-C): nothing new is sent."""
    warnings: list[str] = field(default_factory=list)
    """Label-sanity warnings found before the run started."""
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        """Rows given a final result in this session."""
        return self.ok + self.parse_error + self.failed

    @property
    def completed(self) -> int:
        """Rows with a result overall, this session and before."""
        return self.done_before + self.finished

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    @property
    def rows_per_second(self) -> float:
        """Throughput of this session."""
        elapsed = self.elapsed
        return self.finished / elapsed if elapsed > 0 else 0.0

    def snapshot(self) -> StatsSnapshot:
        """Every counter plus the derived figures, as a typed dict."""
        return StatsSnapshot(
            total=self.total, done_before=self.done_before, ok=self.ok,
            parse_error=self.parse_error, failed=self.failed, retries=self.retries,
            rate_limited=self.rate_limited, prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens, in_flight=self.in_flight,
            concurrency=self.concurrency, flushed_parts=self.flushed_parts,
            trace_dropped=self.trace_dropped, reused=self.reused, emulator=self.emulator, limits=self.limits,
            outages=self.outages, server_stalls=self.server_stalls,
            finished=self.finished, completed=self.completed,
            elapsed_s=round(self.elapsed, 3), rows_per_second=round(self.rows_per_second, 2),
        )
