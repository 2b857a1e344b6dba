"""A token bucket for ``--tpm``, owned by the project: charge before sending, refund after.

The tokens-per-minute limit is charged with a request's counted prompt tokens plus the
completion it is expected to use, before it is sent; when the reply reports what it really
used, the difference is refunded (or the overrun charged), so the bucket follows real usage.
aiolimiter's bucket has no public refund, so this one is written here: a few lines of
arithmetic on an injectable clock, which is also what lets its tests run in milliseconds.

The bucket holds ``capacity`` tokens and drains at ``capacity / period`` tokens a second (a
leaky bucket, as aiolimiter's): an acquisition waits until its amount fits. Waiters go in
FIFO order (one lock), and a waiter re-checks at least every ``max_sleep`` seconds, so a
refund made meanwhile shortens its wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

__all__ = ["TokenBucket"]


class TokenBucket:
    """At most ``capacity`` tokens in any ``period`` seconds, drained continuously."""

    def __init__(
        self,
        capacity: float,
        period: float = 60.0,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        max_sleep: float = 0.25,
    ) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError(f"capacity and period must be > 0, got {capacity} and {period}")
        self.capacity = float(capacity)
        self.rate = self.capacity / period
        self._level = 0.0
        self._updated = clock()
        self._clock = clock
        self._sleep = sleep
        self._max_sleep = max_sleep
        self._lock = anyio.Lock()

    @property
    def level(self) -> float:
        """Tokens charged and not yet drained."""
        self._drain()
        return self._level

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, amount: float) -> None:
        """Wait until ``amount`` fits, then charge it (an amount over capacity waits for an
        empty bucket and goes alone)."""
        amount = min(float(amount), self.capacity)
        async with self._lock:
            while True:
                self._drain()
                excess = self._level + amount - self.capacity
                if excess <= 1e-9:
                    self._level += amount
                    return
                await self._sleep(min(excess / self.rate, self._max_sleep))

    def refund(self, amount: float) -> None:
        """Give back ``amount`` charged earlier (never below empty)."""
        if amount > 0:
            self._drain()
            self._level = max(0.0, self._level - amount)

    def charge(self, amount: float) -> None:
        """Charge ``amount`` at once, without waiting (usage beyond a reservation)."""
        if amount > 0:
            self._drain()
            self._level += amount
