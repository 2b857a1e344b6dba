"""The circuit breaker: an endpoint that answers nothing useful pauses the run instead of
failing its rows.

A request **fails the endpoint** when nothing useful came back: no connection could be made
(refused, DNS, TLS: the provider's decision is :attr:`~batchjudge.core.types.RetryKind.OUTAGE`),
the connection was lost before any reply, no reply came within the request timeout, the reply
was a 5xx, or it was not HTTP or not the API's (garbage bytes, a reply that breaks off, a body
that is not a chat completion). A 429 or another 4xx is an answer: the server is there.

The breaker **opens** on such a failure when

- no request of the run has succeeded yet (the first one is enough: nothing says the endpoint
  works), or it could not connect at all;
- or it ends a **streak** of :data:`FAILURES_FOR_OUTAGE` (5) failures, or
  :data:`DISCONNECTS_FOR_OUTAGE` (3) lost connections, with no answer in between to a request
  sent after the streak began (an answer to a request sent earlier says nothing about it);
- or the server asks for a wait longer than the run accepts (``--max-retry-after``).

Why 5 in a row: a healthy server's random failures must not open it. At 2% of 500s, a
failure is followed by four more once in 0.02^-4 = 6,250,000 (at 400 RPS, once in nine days);
a lone failure keeps the row's ordinary retry (and its quick first retry). An outage costs the
rows at most four attempts before it opens (one each, unless a row's retries are all that is
in flight), within the default five retries. A dead, hung or garbled endpoint makes five
failures in a row within one round of the requests in flight.

While open, nobody sends, except one **probe** at a time, sent after an exponential backoff
(:data:`PROBE_BASE_S` 1, 2, 4 … s, capped at :data:`PROBE_CAP_S`). The senders waiting take
turns at probing (first come, first served): a row whose own request always fails (one the
server cannot take) must not be the only probe, or it would pass for a dead endpoint. Every failure of the
endpoint meanwhile is part of the outage, not of its row's retries. Any answer to a request
sent since the outage began closes it again and sending resumes; the rows that waited were
never marked failed and kept their retries.

Before any request of the run has succeeded, an endpoint that fails for
:data:`ABORT_AFTER_S` seconds (30) is a configuration problem, not an outage: the breaker says
so (:meth:`Breaker.record_outage` returns True) and the engine stops the run. The outage is
dated from when the first failed request was sent, and the last probe is timed to leave on
that deadline, so a dead, hung or garbled ``--base-url`` stops the run within 30 s plus one
request timeout of its first request, whatever the backoff.

The numbers above are this module's constants, in one place; clock and sleep are injectable
like every other limit, so the tests run on virtual time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from batchjudge.core.scrub import scrubbed_logger

__all__ = [
    "ABORT_AFTER_S", "DISCONNECTS_FOR_OUTAGE", "FAILURES_FOR_OUTAGE", "PROBE_BASE_S", "PROBE_CAP_S", "Breaker",
    "ProbeTicket",
]

ABORT_AFTER_S = 30.0
"""Before any success, an endpoint failing this long stops the run (see the module docstring)."""
FAILURES_FOR_OUTAGE = 5
"""Failures of the endpoint in a row, after successes, that open the breaker."""
DISCONNECTS_FOR_OUTAGE = 3
"""Connections lost before any reply in a row, after successes, that open the breaker."""
PROBE_BASE_S = 1.0
"""The first probe of an open breaker waits this long; each failed probe doubles it..."""
PROBE_CAP_S = 30.0
"""...up to this."""

logger = scrubbed_logger(__name__)


class ProbeTicket:
    """Held by the one request that probes an open breaker; hand it back with the outcome."""

    __slots__ = ()


class Breaker:
    """Closed (send freely) or open (one probe at a time); see the module docstring."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        abort_after: float = ABORT_AFTER_S,
        probe_base: float = PROBE_BASE_S,
        probe_cap: float = PROBE_CAP_S,
        failures_for_outage: int = FAILURES_FOR_OUTAGE,
        disconnects_for_outage: int = DISCONNECTS_FOR_OUTAGE,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.abort_after = abort_after
        self.probe_base = probe_base
        self.probe_cap = probe_cap
        self.failures_for_outage = failures_for_outage
        self.disconnects_for_outage = disconnects_for_outage
        self.succeeded = False
        """Whether any request of the run has been answered successfully."""
        self.open_since: float | None = None
        """When the current outage began (``None`` while closed)."""
        self.reason = ""
        """What the current (or last) outage is, in a few words, for the progress line."""
        self.episodes = 0
        """Outages so far."""
        self._probe: ProbeTicket | None = None
        self._line: deque[object] = deque()
        """The senders waiting at the open breaker, in turn to probe."""
        self._failed_probes = 0
        self._failures = 0
        """Failures of the endpoint in a row (lost connections included), with no answer in
        between..."""
        self._disconnects = 0
        """...of which connections lost before any reply..."""
        self._streak_since = math.inf
        """...since this send time (an answer to a request sent earlier does not end the streak)."""
        self._changed: anyio.Event | None = None

    @property
    def is_open(self) -> bool:
        """Whether sending is paused."""
        return self.open_since is not None

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _probe_delay(self) -> float:
        delay = min(self.probe_cap, self.probe_base * 2.0**self._failed_probes)
        if not self.succeeded and self.open_since is not None:
            delay = min(delay, max(0.0, self.open_since + self.abort_after - self._clock()))
        return delay

    async def admit(self) -> ProbeTicket | None:
        """Return once this caller may send: at once while closed (``None``); while open, as
        the probe when its turn comes (a ticket, after the backoff), or once it has closed."""
        seat = object()
        self._line.append(seat)
        try:
            while self.open_since is not None:
                if self._probe is None and self._line[0] is seat:
                    self._line.popleft()
                    ticket = self._probe = ProbeTicket()
                    try:
                        await self._sleep(self._probe_delay())
                    except BaseException:
                        self.release(ticket)
                        raise
                    if self.open_since is not None:
                        return ticket
                    self.release(ticket)  # closed while we slept: send as anyone would
                    return None
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()
            return None
        finally:
            if self._line and seat in self._line:  # left its turn (closed, or cancelled)
                first = self._line[0] is seat
                self._line.remove(seat)
                if first:
                    self._notify()

    def release(self, ticket: ProbeTicket | None) -> None:
        """Give the probe role back without an outcome (the probe was cancelled)."""
        if ticket is not None and self._probe is ticket:
            self._probe = None
            self._notify()

    def record_success(self, ticket: ProbeTicket | None, sent_at: float = math.inf) -> None:
        """A request sent at ``sent_at`` was answered successfully: the endpoint is up."""
        self.succeeded = True
        if ticket is not None or self.open_since is not None or self._failures:
            self.record_answer(ticket, sent_at)

    def record_answer(self, ticket: ProbeTicket | None, sent_at: float = math.inf) -> None:
        """The server answered a request sent at ``sent_at`` (even with an error about the
        row): that ends a streak of failures and closes the breaker, unless the request was
        sent before they began."""
        if sent_at >= self._streak_since:
            self._failures = self._disconnects = 0
            self._streak_since = math.inf
        self.release(ticket)
        if self.open_since is not None and (ticket is not None or sent_at >= self.open_since):
            logger.warning("the endpoint answers again after %.0f s; sending resumed",
                           self._clock() - self.open_since)
            self.open_since = None
            self._failed_probes = 0
            self._line.clear()  # every waiter sends now
            self._notify()

    def record_failure(self, sent_at: float = math.nan, *, disconnected: bool = False) -> bool:
        """A request sent at ``sent_at`` failed the endpoint (nothing useful came back;
        ``disconnected``: its connection was lost before any reply). True when that is an
        outage, which the caller then records with :meth:`record_outage`: the breaker is
        already open, no request has succeeded yet, or the failure completes a streak."""
        if not self._failures:
            self._streak_since = self._clock() if math.isnan(sent_at) else sent_at
        self._failures += 1
        self._disconnects += disconnected
        return (self.is_open or not self.succeeded or self._failures >= self.failures_for_outage
                or self._disconnects >= self.disconnects_for_outage)

    def record_outage(self, ticket: ProbeTicket | None, reason: str, sent_at: float = math.nan) -> bool:
        """A request sent at ``sent_at`` met the outage ``reason``: open (or keep open) the
        breaker, dated from that send when it opens now.

        Returns True when the run must stop: nothing has ever succeeded and the endpoint has
        failed for ``abort_after`` seconds.
        """
        now = self._clock()
        if self.open_since is None:
            self.open_since = now if math.isnan(sent_at) else min(now, sent_at)
            self.reason = reason
            self.episodes += 1
            self._failed_probes = 0
            logger.warning("%s; sending paused, probing the endpoint until it answers", reason)
        elif ticket is not None and self._probe is ticket:
            self.reason = reason
            self._failed_probes += 1
        self.release(ticket)
        return not self.succeeded and now - self.open_since >= self.abort_after

    def record_neutral(self, ticket: ProbeTicket | None) -> None:
        """A probe ended in neither an answer nor a failure of the endpoint (a reply over the
        size cap, an error of the provider's own code): the outage goes on, and the next probe
        waits longer."""
        if ticket is not None and self._probe is ticket:
            self._failed_probes += 1
        self.release(ticket)
