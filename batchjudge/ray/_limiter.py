"""The shared limiter: one per endpoint, owning the limits every worker obeys.

Mistral sets its limits per organization, so more workers must share one limit, never
multiply it. One :class:`SharedLimiter` (run inside a Ray actor, :mod:`._actors`) owns the
engine's own :class:`~batchjudge.engine.limits.Limits` for an endpoint: its request windows
(per second and per minute, each a :class:`~batchjudge.engine.pacing.WindowPacer`, given by a
flag, learned from the replies' headers or estimated at the first 429), its token window, the
shared ``Retry-After`` cooldown and the adaptive concurrency. Workers never ask it once per
request:

- they **lease** send times in chunks (:meth:`SharedLimiter.lease`): the pacers book the
  earliest times that keep every window under its limit, up to ``horizon`` seconds past the
  first, and the worker sends at those times; tokens are leased the same way, each lease one
  charge in the token window;
- they **give back** what they did not use (a booked time that a cooldown voided or that came
  too late, tokens left over), which frees it for others;
- they **report** in batches (:meth:`SharedLimiter.report`): their send times (moved in the
  windows when one left later than booked, as in one process), replies with
  their usage and rate-limit headers (settled by the same ``Limits.settle``, which learns the
  limits, and corrected in their lease's token charge), successes (``Limits.on_success``) and,
  at once, 429s with their ``Retry-After`` and headers (``Limits.on_rate_limited``); a failure
  that must stop the whole run is kept for the driver to read;
- they **watch** (:meth:`SharedLimiter.watch`, a long poll): any change every worker must obey
  at once (a cooldown, a new concurrency, a limit now known, a stop) ends every pending watch,
  so a 429 seen by one worker pauses all of them within a round trip.

With no limit given, the first request goes alone as in one process: the first lease gets one
send time and every other lease waits until that request's outcome is reported (its headers
may announce the limits), or ``probe_timeout`` seconds.

Nothing here imports Ray: the tests run a limiter and its workers in one process on virtual
time, and :mod:`._actors` wraps it in an actor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from batchjudge.core.types import JudgeReply
from batchjudge.engine.limits import Clock, Limits, Reservation, Sleep
from batchjudge.engine.pacing import WindowPacer
from batchjudge.engine.stats import RunStats
from batchjudge.engine.token_window import Charge
from batchjudge.errors import LimitTooLowError, QuotaExhaustedError

__all__ = ["Broadcast", "Lease", "LimiterClient", "RateLimited", "Report", "Settled", "SharedLimiter",
           "rate_headers"]


SECOND_MARGIN = 0.030
"""The shared per-second window's margin (seconds): a booked send leaves a little after its
time (the lease's trip, the worker's busy event loop), more than one process's own sends, so
the window is widened by 30 ms instead of 10 ms (see the README's measurements)."""


def rate_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers a limiter learns from (``x-ratelimit-*``, ``ratelimitbysize-*``), the rest
    left out: what a report carries of a reply."""
    if not headers:
        return {}
    return {k: v for k, v in headers.items() if "ratelimit" in k}


@dataclass(frozen=True, slots=True)
class Broadcast:
    """What every worker of an endpoint must obey now; part of every answer of its limiter."""

    epoch: int
    """Grows with every change; a worker applies a broadcast newer than the last it saw."""
    now: float
    """The limiter's clock at the answer (workers convert its times to their own clocks)."""
    cooldown_until: float
    """On the limiter's clock: nobody sends before it (a ``Retry-After``)."""
    concurrency: float
    """The fraction of its own ceiling each worker may keep in flight (adaptive concurrency)."""
    paced: bool
    """Sends need leased times: a request window is known, or the first request is probing."""
    token_limit: float
    """Tokens per minute (0: no token window, sends need no tokens)."""
    token_chunk: float
    """Tokens a worker leases at a time when several of its senders wait."""
    slack: float
    """How late a booked send time may still be used, in seconds (half the narrowest window
    margin; no limit while no window is paced)."""
    stopping: bool
    """The run is stopping: send nothing more."""
    pace: float | None = None
    """The requests a second in force for every worker together (None: none known): each
    worker sizes its concurrency for it (:mod:`batchjudge.engine.sizing`)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Send times and tokens lent to one worker."""

    slots: tuple[float, ...]
    """Booked send times on the limiter's clock: the worker gives back those it does not use."""
    tokens: float
    lease: int
    """Names this lease's token charge in later reports."""
    probe: bool
    """The one slot is the run's first request: report its outcome at once."""
    state: Broadcast


@dataclass(frozen=True, slots=True)
class Settled:
    """A reply, as the limiter needs it: when it was sent, what it reserved and used."""

    sent_at: float
    """On the limiter's clock."""
    lease: int | None
    """The token lease the request drew on (None: no tokens were leased)."""
    tokens: float
    prompt_estimate: int
    reply: JudgeReply
    """Its usage and rate-limit headers, never its text."""


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A 429: its ``Retry-After`` (None when it gave none), send time and headers, and the
    tokens the refused request was charged (its headers may show the token window refused it)."""

    retry_after: float | None
    sent_at: float
    headers: dict[str, str]
    tokens: float = 0.0


@dataclass(slots=True)
class Report:
    """What a worker tells its limiter, gathered between two flushes."""

    sent: list[float] = field(default_factory=list)
    """Send times on the limiter's clock."""
    moved: list[tuple[float, float]] = field(default_factory=list)
    """``(booked, left)``: sends that left later than booked (a busy loop, a new connection),
    on the limiter's clock."""
    successes: int = 0
    settled: list[Settled] = field(default_factory=list)
    rate_limited: list[RateLimited] = field(default_factory=list)
    unused_slots: list[float] = field(default_factory=list)
    unused_tokens: list[tuple[int, float]] = field(default_factory=list)
    """``(lease, tokens)`` lent but not used."""
    probe_done: bool = False
    """The first request's outcome is in this report: the other workers may send."""
    stopped_by: BaseException | None = None
    """What made a call stop the whole run (a rejected key), if anything."""

    def __bool__(self) -> bool:
        return bool(self.sent or self.moved or self.successes or self.settled or self.rate_limited or self.unused_slots
                    or self.unused_tokens or self.probe_done or self.stopped_by)


class LimiterClient(Protocol):
    """How a worker reaches its limiter: the limiter itself in one process, an actor handle
    across processes."""

    async def lease(self, slots: int, tokens: float, returned: Sequence[float]) -> Lease:
        """Book up to ``slots`` send times and ``tokens`` tokens; give back ``returned``."""
        ...

    async def report(self, report: Report) -> Broadcast:
        """Apply a batch of sends, replies, successes, 429s and unused leases."""
        ...

    async def watch(self, epoch: int) -> Broadcast:
        """The next broadcast after ``epoch`` (or the current one after a while)."""
        ...


class SharedLimiter:
    """The limits of one endpoint, lent to its workers; see the module docstring.

    ``concurrency``, ``rps``, ``rpm`` and ``tpm`` are the endpoint's (all workers together), and
    ``min_rps`` the slowest limit it accepts from the server;
    leases book at most ``horizon`` seconds of send times past the first one, and tokens
    ``token_share`` of the token limit at most (unless one request needs more).
    """

    def __init__(
        self,
        *,
        concurrency: int,
        rps: float | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        expected_completion_tokens: int = 64,
        horizon: float = 0.1,
        second_margin: float = SECOND_MARGIN,
        token_share: float = 1 / 60,
        watch_timeout: float = 10.0,
        probe_timeout: float = 70.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        min_rps: float | None = None,
    ) -> None:
        self.stats = RunStats(concurrency=concurrency)
        """Counters over every worker: 429s, the current concurrency, the pace in force. Its
        limits do not size the concurrency (each worker does) and keep a flag at a 429: their
        send log lags the workers' sends by up to a report, too little to count what the
        server admitted (:data:`~batchjudge.engine.limits.BELOW_FLAG`)."""
        self.limits = Limits(concurrency=concurrency, rps=rps, rpm=rpm, tpm=tpm,
                             expected_completion_tokens=expected_completion_tokens, clock=clock, sleep=sleep,
                             second_margin=second_margin, stats=self.stats, min_rps=min_rps,
                             sizing=False, correct_flags=False)
        self.stopped_by: BaseException | None = None
        """The first reason a worker gave for stopping the whole run (or the monthly quota
        spent): the driver reads it here, since an error crossing Ray's task boundary loses
        its cause."""
        self.stopping = False
        self.horizon = horizon
        self.token_share = token_share
        self.watch_timeout = watch_timeout
        self.probe_timeout = probe_timeout
        self.clock = clock
        self._charges: dict[int, Charge] = {}
        """Live token leases by number (expired ones are dropped as new ones come)."""
        self._leases = 0
        self._probing = not (rps or rpm or tpm)
        self._probe: anyio.Event | None = None
        self._probe_slot = math.nan
        self._epoch = 0
        self._changed = anyio.Event()
        self._seen = self._observed()

    def _pacers(self) -> list[WindowPacer]:
        return [w.pacer for w in (self.limits.second, self.limits.minute) if w.pacer is not None]

    def state(self) -> Broadcast:
        """What every worker must obey now."""
        limits, pacers, tokens = self.limits, self._pacers(), self.limits.tokens
        return Broadcast(
            epoch=self._epoch,
            now=self.clock(),
            cooldown_until=limits.cooldown.until,
            concurrency=limits.capacity.total_tokens / limits.max_concurrency,
            paced=self._probing or bool(pacers),
            token_limit=0.0 if tokens is None else tokens.limit,
            token_chunk=0.0 if tokens is None else tokens.limit * self.token_share,
            slack=min((p.margin / 2 for p in pacers), default=math.inf),
            stopping=self.stopping,
            pace=limits.pace(),
        )

    def _observed(self) -> tuple[object, ...]:
        state = self.state()
        return state.cooldown_until, state.concurrency, state.paced, state.token_limit, state.stopping, state.pace

    def _publish(self) -> None:
        """Wake every watcher when what workers must obey has changed."""
        seen = self._observed()
        if seen != self._seen:
            self._seen = seen
            self._epoch += 1
            self._changed.set()
            self._changed = anyio.Event()

    def stop_sending(self) -> None:
        """Every worker sends nothing more (the run is stopping)."""
        self.stopping = True
        self._publish()

    async def lease(self, slots: int, tokens: float, returned: Sequence[float] = ()) -> Lease:
        """Lend ``tokens`` (waiting for the token window) and up to ``slots`` send times (at
        least one when asked, none before the cooldown ends); take back ``returned`` first."""
        self._release(returned)
        probe = False
        if self._probing and slots > 0:
            if self._probe is None:
                self._probe = anyio.Event()
                probe = True
            else:
                with anyio.move_on_after(self.probe_timeout):
                    await self._probe.wait()
                self._end_probe()
        number, granted = 0, 0.0
        window = self.limits.tokens
        if window is not None and tokens > 0:
            charge = await window.acquire(min(tokens, window.limit))
            granted = charge.amount
            self._leases += 1
            number = self._leases
            self._charges = {n: c for n, c in self._charges.items() if c.live}
            self._charges[number] = charge
        booked: list[float] = []
        if probe:
            booked = [self.clock()]
            self._probe_slot = booked[0]
            self._publish()
        elif slots > 0 and (pacers := self._pacers()):
            booked = self._book(pacers, slots)
        return Lease(tuple(booked), granted, number, probe, self.state())

    def _book(self, pacers: list[WindowPacer], n: int) -> list[float]:
        """Up to ``n`` send times that fit every pacer, from the cooldown's end, within the
        horizon past the first."""
        start = max(self.clock(), self.limits.cooldown.until)
        times: list[float] = []
        while len(times) < n:
            at = max(p.earliest(start) for p in pacers)
            if times and at > times[0] + self.horizon:
                break
            for pacer in pacers:
                pacer.reserve(1, not_before=at)
            times.append(at)
            start = at
        return times

    def _release(self, slots: Sequence[float]) -> None:
        if slots:
            for pacer in self._pacers():
                pacer.release(slots)
            if self._probe_slot in slots:
                self._end_probe()

    def _end_probe(self) -> None:
        """The first request is over: every lease may book from now on."""
        if self._probing:
            self._probing = False
            if self._probe is not None:
                self._probe.set()
            self.limits.move_send(self._probe_slot, self.clock())  # it reached the server anywhere up to now
            self._publish()

    async def report(self, report: Report) -> Broadcast:
        """Apply a worker's report with the engine's own limits, and publish what changed."""
        limits = self.limits
        limits.record_sends(report.sent)
        for booked, left in report.moved:
            limits.move_send(booked, left)
        try:
            for hit in report.rate_limited:
                limits.on_rate_limited(hit.retry_after, Reservation(hit.tokens, sent_at=hit.sent_at), hit.headers)
            for done in report.settled:
                self._settle(done)
        except (QuotaExhaustedError, LimitTooLowError) as exc:  # nothing more can succeed (soon enough)
            self._stop(exc)
        for _ in range(report.successes):
            limits.on_success()
        self._release(report.unused_slots)
        for number, unused in report.unused_tokens:
            self._correct(number, -unused)
        if report.probe_done:
            self._end_probe()
        if report.stopped_by is not None:
            self._stop(report.stopped_by)
        self._publish()
        return self.state()

    def _settle(self, done: Settled) -> None:
        """Learn from a reply (headers, usage) and correct its lease's token charge."""
        reply = done.reply
        self.limits.settle(Reservation(done.tokens, done.prompt_estimate, sent_at=done.sent_at), reply)
        used = reply.prompt_tokens + reply.completion_tokens
        if done.lease is not None and used:
            self._correct(done.lease, used - done.tokens)

    def _correct(self, number: int, change: float) -> None:
        """Move a token lease's charge by ``change`` tokens (never below zero)."""
        charge = self._charges.get(number)
        if charge is not None and self.limits.tokens is not None:
            self.limits.tokens.correct(charge, max(0.0, charge.amount + change))

    def _stop(self, cause: BaseException) -> None:
        if self.stopped_by is None:
            self.stopped_by = cause
        self.stopping = True

    async def watch(self, epoch: int) -> Broadcast:
        """Return at the next change after ``epoch``, or after ``watch_timeout`` seconds."""
        if epoch == self._epoch:
            with anyio.move_on_after(self.watch_timeout):
                await self._changed.wait()
        return self.state()
