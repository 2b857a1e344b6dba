"""The circuit breaker: an unreachable endpoint pauses the run instead of failing its rows.

When a request cannot reach the endpoint at all (refused, DNS, TLS: the provider's decision is
:attr:`~batchjudge.core.types.RetryKind.OUTAGE`), when ``disconnects_for_outage`` connections
in a row are reset or closed before any reply (a load balancer with no backend; one alone is
an ordinary transient failure), or when the server asks for a wait longer than the run
accepts, the breaker **opens**: nobody sends, except one **probe** at a time, sent
after an exponential backoff (1, 2, 4 … s, capped). Any answer to a request sent since the outage began closes it again
and sending resumes (an answer to a request sent before says nothing about the outage); the
rows that waited were never marked failed and kept their retries.

Before any request of the run has succeeded, an endpoint that stays unreachable for
``abort_after`` seconds (30 by default) is a configuration problem, not an outage: the
breaker says so (:meth:`Breaker.record_outage` returns True) and the engine stops the run.
The last probe is timed to land on that deadline, so a dead ``--base-url`` stops the run in
about 30 s whatever the backoff.

Clock and sleep are injectable like every other limit, so the tests run on virtual time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio

from batchjudge.core.scrub import scrubbed_logger

__all__ = ["Breaker", "ProbeTicket"]

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
        abort_after: float = 30.0,
        probe_base: float = 1.0,
        probe_cap: float = 30.0,
        disconnects_for_outage: int = 3,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.abort_after = abort_after
        self.probe_base = probe_base
        self.probe_cap = probe_cap
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
        self._failed_probes = 0
        self._disconnects = 0
        """Connections lost in a row before any reply, with no answer in between..."""
        self._streak_since = -math.inf
        """...since this time (an answer to a request sent earlier does not end the streak)."""
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
        the probe (a ticket, after the backoff), or once the breaker has closed."""
        while self.open_since is not None:
            if self._probe is None:
                ticket = self._probe = ProbeTicket()
                try:
                    await self._sleep(self._probe_delay())
                except BaseException:
                    self.release(ticket)
                    raise
                if self.open_since is not None:
                    return ticket
                self.release(ticket)  # closed while we slept: send as anyone would
                continue
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        return None

    def release(self, ticket: ProbeTicket | None) -> None:
        """Give the probe role back without an outcome (the probe was cancelled)."""
        if ticket is not None and self._probe is ticket:
            self._probe = None
            self._notify()

    def record_success(self, ticket: ProbeTicket | None, sent_at: float = math.inf) -> None:
        """A request sent at ``sent_at`` was answered successfully: the endpoint is up."""
        self.succeeded = True
        if ticket is not None or self.open_since is not None or self._disconnects:
            self.record_answer(ticket, sent_at)

    def record_answer(self, ticket: ProbeTicket | None, sent_at: float = math.inf) -> None:
        """The server answered a request sent at ``sent_at`` (even with an error about the
        row): that ends a streak of lost connections and closes the breaker, unless the
        request was sent before they began."""
        if sent_at >= self._streak_since:
            self._disconnects = 0
            self._streak_since = -math.inf
        self.release(ticket)
        if self.open_since is not None and (ticket is not None or sent_at >= self.open_since):
            logger.warning("the endpoint answers again after %.0f s; sending resumed",
                           self._clock() - self.open_since)
            self.open_since = None
            self._failed_probes = 0
            self._notify()

    def record_outage(self, ticket: ProbeTicket | None, reason: str) -> bool:
        """A request met the outage ``reason``: open (or keep open) the breaker.

        Returns True when the run must stop: nothing has ever succeeded and the endpoint has
        been unreachable for ``abort_after`` seconds.
        """
        now = self._clock()
        if self.open_since is None:
            self.open_since = now
            self.reason = reason
            self.episodes += 1
            self._failed_probes = 0
            logger.warning("%s; sending paused, probing the endpoint until it answers", reason)
        elif ticket is not None and self._probe is ticket:
            self.reason = reason
            self._failed_probes += 1
        self.release(ticket)
        return not self.succeeded and now - self.open_since >= self.abort_after

    def record_disconnect(self) -> bool:
        """A connection was lost before any reply; True when that is an outage: the breaker is
        already open, or enough connections in a row were lost (the caller then records it
        with :meth:`record_outage`)."""
        if not self._disconnects:
            self._streak_since = self._clock()
        self._disconnects += 1
        return self.is_open or self._disconnects >= self.disconnects_for_outage

    def record_neutral(self, ticket: ProbeTicket | None) -> None:
        """A probe ended in neither an answer nor a refused connection (a timeout): the outage
        goes on, and the next probe waits longer."""
        if ticket is not None and self._probe is ticket:
            self._failed_probes += 1
        self.release(ticket)
