"""The request pacer: at most ``n`` sends in any window, mirroring a strict server limit.

A rate limit such as "100 requests per second" is enforced by the API as a window: at most
100 requests in any one second. A leaky bucket that lets one request through every 10 ms
(``AsyncLimiter(rate * 0.01, 0.01)``) never breaks it, but every timer or event-loop delay is
lost for good, and on a busy machine that measured 78-81% of the ceiling. This pacer keeps the
send times of the last ``n`` requests and lets a request go once the ``n``-th previous one is
more than a window old, so a late wake-up is made up by the next send instead of lost. The
window is widened by a small margin (3% by default) so that arrival jitter between client and
server does not turn into 429s.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

__all__ = ["WindowPacer"]

T = TypeVar("T")


class WindowPacer:
    """At most ``floor(rate)`` sends (at least one) in any ``window * (1 + margin)`` seconds.

    For a rate below one per second, one send per ``1 / rate`` seconds. Waiters go in FIFO
    order (one lock), so no worker starves.
    """

    def __init__(
        self,
        rate: float,
        *,
        margin: float = 0.03,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.capacity = max(1, math.floor(rate))
        self.base_window = self.capacity / rate * (1.0 + margin)
        self.window = self.base_window
        self._sent: deque[float] = deque(maxlen=self.capacity)
        self._lock = anyio.Lock()
        self._clock = clock
        self._sleep = sleep

    def slow_down(self) -> None:
        """A 429 despite the pacing: widen the window by 1%, at most 10% over the base."""
        self.window = min(self.window * 1.01, self.base_window * 1.10)

    def recover(self) -> None:
        """A calm stretch: narrow the window back toward the base by 0.25%."""
        self.window = max(self.base_window, self.window * 0.9975)

    async def acquire(self, gate: Callable[[], Awaitable[T]] | None = None) -> T | None:
        """Wait until one more send fits in the window, then for ``gate``, and record the send;
        return what ``gate`` returned.

        ``gate`` (the shared 429 cooldown) is awaited while holding the line, so that the time
        recorded is the real send time and no burst of queued workers leaves when it lifts.
        """
        async with self._lock:
            if len(self._sent) == self.capacity:
                wait = self._sent[0] + self.window - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            passed = await gate() if gate is not None else None
            self._sent.append(self._clock())
        return passed
