"""The tokens-per-minute limit as the API counts it: at most ``limit`` tokens in any window.

Each request is charged before it is sent with its counted prompt tokens plus the completion
it is expected to use; when the reply reports what it really used, the charge is corrected in
place (a refund, or the overrun), so the window follows real usage. A charge stays in the
window for ``window + margin`` seconds from its send, like the server's record of it, which is
why this is a sliding window and not a leaky bucket: a bucket of capacity ``limit`` lets up to
twice the limit through in one minute, and a strict server refuses the second half.

An acquisition waits until its amount fits; waiters go in FIFO order (one lock), and a waiter
re-checks at least every ``max_sleep`` seconds, so a refund made meanwhile shortens its wait.
Tokens used by others on the same quota can be recorded (:meth:`TokenWindow.add_foreign`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

__all__ = ["Charge", "TokenWindow"]


@dataclass(slots=True)
class Charge:
    """One request's tokens in the window."""

    at: float
    amount: float
    live: bool = True
    """False once the charge has left the window (corrections then change nothing)."""


class TokenWindow:
    """At most ``limit`` tokens charged in any ``window + margin`` seconds."""

    def __init__(
        self,
        limit: float,
        window: float = 60.0,
        *,
        margin: float = 0.5,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        max_sleep: float = 0.25,
    ) -> None:
        if limit <= 0 or window <= 0:
            raise ValueError(f"limit and window must be > 0, got {limit} and {window}")
        self.limit = float(limit)
        self.span = window + margin
        self._charges: deque[Charge] = deque()
        self._total = 0.0
        self._clock = clock
        self._sleep = sleep
        self._max_sleep = max_sleep
        self._lock = anyio.Lock()

    @property
    def used(self) -> float:
        """Tokens charged in the current window."""
        self._expire(self._clock())
        return self._total

    def set_limit(self, limit: float) -> None:
        """Allow ``limit`` tokens a window from now on."""
        if limit > 0:
            self.limit = float(limit)

    def _expire(self, now: float) -> None:
        charges = self._charges
        while charges and charges[0].at + self.span <= now:
            gone = charges.popleft()
            gone.live = False
            self._total -= gone.amount
        if not charges:
            self._total = 0.0  # no drift from float sums

    async def acquire(self, amount: float) -> Charge:
        """Wait until ``amount`` fits, then charge it; an amount over the limit waits for an
        empty window and goes alone."""
        amount = min(max(0.0, float(amount)), self.limit)
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                excess = self._total + amount - self.limit
                if excess <= 1e-9:
                    charge = Charge(now, amount)
                    self._charges.append(charge)
                    self._total += amount
                    return charge
                await self._sleep(min(self._wait_for(excess, now), self._max_sleep))

    def _wait_for(self, excess: float, now: float) -> float:
        """Seconds until ``excess`` tokens have left the window."""
        freed = 0.0
        for charge in self._charges:
            freed += charge.amount
            if freed >= excess - 1e-9:
                return max(0.0, charge.at + self.span - now)
        return self.span

    def correct(self, charge: Charge, actual: float) -> None:
        """Replace a charge's amount with what the request really used."""
        if charge.live:
            self._total += actual - charge.amount
            charge.amount = actual

    def add_foreign(self, amount: float) -> None:
        """Record ``amount`` tokens used now by someone else on the same quota."""
        if amount > 0:
            self._charges.append(Charge(self._clock(), amount))
            self._total += amount
