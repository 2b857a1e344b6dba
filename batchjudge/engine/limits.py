"""The limits one run's requests share: concurrency, requests per second, tokens per minute,
and the cooldown a 429 imposes on everyone.

- ``--rps`` is a :class:`~batchjudge.engine.pacing.WindowPacer`: at most N sends in any
  window, as the API counts them.
- ``--tpm`` is a :class:`~batchjudge.engine.buckets.TokenBucket` charged with each request's
  prompt tokens plus its expected completion, corrected by the reported usage.
- A ``Retry-After`` sets one shared :class:`Cooldown`; every sender checks it right before it
  sends (after the pacer), so no request leaves before the server said it may.
- Concurrency is a resizable :class:`anyio.CapacityLimiter`: repeated 429s shrink it, a calm
  stretch of successes grows it back to the configured ceiling.
- An unreachable endpoint opens the shared :class:`~batchjudge.engine.breaker.Breaker`: every
  sender waits at the same gate as the cooldown while one probe finds out when it is back.
- :meth:`Limits.stop_sending` (a stopping run: SIGTERM, Ctrl-C) makes every later send raise
  :class:`SendingStopped`, while :attr:`Limits.sending` counts the requests still on the wire.

Clock and sleep are injectable, so the tests of all of this run on a fake clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio

from batchjudge.core.types import JudgeReply, JudgeRequest
from batchjudge.engine.breaker import Breaker, ProbeTicket
from batchjudge.engine.buckets import TokenBucket
from batchjudge.engine.pacing import WindowPacer
from batchjudge.engine.stats import RunStats

__all__ = ["Clock", "Cooldown", "Limits", "SendingStopped", "Sleep"]

Clock = Callable[[], float]
"""Monotonic seconds."""
Sleep = Callable[[float], Awaitable[None]]
"""Wait that many seconds."""


class SendingStopped(Exception):
    """Raised instead of sending once the run is stopping: the row is left for the next run."""


class Cooldown:
    """One shared pause: after a 429 with ``Retry-After``, nobody sends until it expires."""

    def __init__(self, clock: Clock = time.monotonic, sleep: Sleep = anyio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self.until = 0.0

    @property
    def active(self) -> bool:
        """Whether a pause is on now."""
        return self._clock() < self.until

    def extend(self, seconds: float) -> None:
        """Pause every sender for ``seconds`` from now (never shortens a pause)."""
        self.until = max(self.until, self._clock() + seconds)

    async def wait(self) -> None:
        """Return once no cooldown is active (re-checking, since it may be extended)."""
        while (remaining := self.until - self._clock()) > 0:
            await self._sleep(remaining)


class Limits:
    """The rate, token and concurrency limits one run shares across its senders."""

    def __init__(
        self,
        *,
        concurrency: int,
        rps: float | None = None,
        tpm: float | None = None,
        expected_completion_tokens: int = 64,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        adapt_after_429s: int = 3,
        calm_successes: int = 50,
        pace_margin: float = 0.03,
        outage_abort_after: float = 30.0,
    ) -> None:
        self.max_concurrency = concurrency
        self.capacity = anyio.CapacityLimiter(concurrency)
        self.rps = rps
        self._rps = WindowPacer(rps, margin=pace_margin, clock=clock, sleep=sleep) if rps else None
        self.tpm = tpm
        self._tpm = TokenBucket(tpm, 60.0, clock=clock, sleep=sleep) if tpm else None
        self._expected_completion = float(expected_completion_tokens)
        self.cooldown = Cooldown(clock, sleep)
        self.breaker = Breaker(clock=clock, sleep=sleep, abort_after=outage_abort_after)
        self.stopping = False
        """Set by :meth:`stop_sending`: no request leaves any more."""
        self.sending = 0
        """Requests on the wire now (sent, reply not yet in)."""
        self.clock = clock
        self.sleep = sleep
        self._recent_429s = 0
        self._adapt_after = adapt_after_429s
        self._calm = 0
        self._calm_successes = calm_successes

    def charge(self, request: JudgeRequest) -> float:
        """Tokens to reserve for ``request`` before sending."""
        amount = request.prompt_tokens + min(self._expected_completion, float(request.max_tokens))
        if self.tpm:
            amount = min(amount, self.tpm)  # a request larger than the bucket still goes, alone
        return amount

    def stop_sending(self) -> None:
        """From now on every :meth:`before_send` raises :class:`SendingStopped`."""
        self.stopping = True

    async def before_send(self, tokens: float) -> ProbeTicket | None:
        """Wait for the token bucket, then the pacer, then the breaker and the shared cooldown.

        The breaker and the cooldown are checked last, right before the send, so no request
        leaves before a ``Retry-After`` expires or while the endpoint is down, however long
        the earlier waits took. Returns the probe ticket when this send probes an open
        breaker (hand it back to the breaker with the outcome).
        """
        if self.stopping:
            raise SendingStopped
        if self._tpm is not None:
            await self._tpm.acquire(tokens)
        if self._rps is not None:
            ticket = await self._rps.acquire(gate=self._gate)
        else:
            ticket = await self._gate()
        if self.stopping:
            self.breaker.release(ticket)
            raise SendingStopped
        return ticket

    async def _gate(self) -> ProbeTicket | None:
        """The last wait before a send: the breaker (a ticket if this send is its probe), then
        the cooldown."""
        ticket = await self.breaker.admit() if self.breaker.is_open else None
        try:
            await self.cooldown.wait()
        except BaseException:
            self.breaker.release(ticket)
            raise
        return ticket

    def settle(self, charged: float, reply: JudgeReply) -> None:
        """Correct the TPM charge with the reported usage, and learn the typical completion."""
        used = reply.prompt_tokens + reply.completion_tokens
        self._expected_completion += 0.05 * (reply.completion_tokens - self._expected_completion)
        if self._tpm is None or not used:
            return
        if used < charged:
            self._tpm.refund(charged - used)
        else:
            self._tpm.charge(used - charged)

    def on_rate_limited(self, retry_after: float | None, stats: RunStats) -> None:
        """A 429: start the shared cooldown; slow down if 429s keep coming.

        429s that arrive while an earlier one's pause is still on are the same episode (those
        requests were sent before the pause began) and change nothing else. Each new episode
        widens the pacer's window by 1%; every third shrinks concurrency by a quarter, never
        below a quarter of the configured ceiling (with a pacer, concurrency is rarely the
        cause, and starving it would cost more throughput than the 429s did).
        """
        stats.rate_limited += 1
        same_episode = self.cooldown.active
        if retry_after:
            self.cooldown.extend(retry_after)
        self._calm = 0
        if same_episode:
            return
        if self._rps is not None:
            self._rps.slow_down()
        self._recent_429s += 1
        floor = max(1, self.max_concurrency // 4)
        if self._recent_429s >= self._adapt_after and self.capacity.total_tokens > floor:
            self.capacity.total_tokens = max(floor, math.floor(self.capacity.total_tokens * 0.75))
            self._recent_429s = 0
        stats.concurrency = int(self.capacity.total_tokens)

    def on_success(self, stats: RunStats) -> None:
        """A calm stretch narrows the pacer back and grows concurrency toward the ceiling."""
        self._calm += 1
        if self._calm >= self._calm_successes:
            self._calm = 0
            self._recent_429s = 0
            if self._rps is not None:
                self._rps.recover()
            if self.capacity.total_tokens < self.max_concurrency:
                step = max(1, self.max_concurrency // 20)
                self.capacity.total_tokens = min(self.max_concurrency, int(self.capacity.total_tokens) + step)
        stats.concurrency = int(self.capacity.total_tokens)
