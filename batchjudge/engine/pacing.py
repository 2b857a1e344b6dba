"""The request pacer: at most ``limit`` sends in any window, as a strict server counts them.

A rate limit such as "100 requests per second" is enforced by the API as a window: at most
100 requests in any one second, counted by arrival. A leaky bucket that lets one request
through every 10 ms never breaks it, but every timer or event-loop delay is lost for good (on
a busy machine that measured 78-81% of the ceiling). This pacer keeps the send times of the
last ``limit`` requests and lets a request go once the ``limit``-th previous one is more than a
window old, so a late wake-up is made up by the next send instead of lost.

The window is widened by a fixed ``margin`` (seconds, not a percentage): arrival jitter between
client and server is a few milliseconds whatever the rate, so 10 ms costs 1% of a one-second
window at any rate, where the former 3% cost 3%. Sends are also kept ``spread`` × the average
gap apart (half of it by default): a burst of a whole window's sends reaches a server one after
another, and the last of them arrives late enough to fill the server's *next* window, which is
where most 429s at a known limit came from; at twice the average rate the pacer can still
make up for late wake-ups. The limit can change while the run works (a
limit announced by the server, an estimate after a 429, a slow-down), and sends made by others
on the same quota can be recorded (:meth:`WindowPacer.add_foreign`).
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["WindowPacer"]

_SAME_SEND = 0.001
"""Two recorded times this close are one send (the pacers of one request record it µs apart)."""


class WindowPacer:
    """At most ``limit`` sends (at least one) in any ``window + margin`` seconds.

    Waiters go in FIFO order (one lock), so no sender starves.
    """

    def __init__(
        self,
        limit: int,
        window: float = 1.0,
        *,
        margin: float = 0.010,
        spread: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if limit < 1 or window <= 0 or margin < 0 or not 0 <= spread <= 1:
            raise ValueError(f"limit >= 1, window > 0, margin >= 0 and 0 <= spread <= 1 needed, "
                             f"got {limit}, {window}, {margin}, {spread}")
        self.window = window
        self.margin = margin
        self.spread = spread
        self._sent: deque[float] = deque(maxlen=limit)
        self._lock = anyio.Lock()
        self._clock = clock
        self._sleep = sleep

    @property
    def limit(self) -> int:
        """Sends allowed in one window."""
        assert self._sent.maxlen is not None
        return self._sent.maxlen

    @property
    def rate(self) -> float:
        """Sends a second this pacer allows at most (margin aside)."""
        return self.limit / self.window

    def configure(self, limit: int, window: float | None = None) -> None:
        """Allow ``limit`` sends per ``window`` seconds from now on (the recent sends still
        count)."""
        limit = max(1, int(limit))
        if window is not None and window > 0:
            self.window = window
        if limit != self.limit:
            self._sent = deque(list(self._sent)[-limit:], maxlen=limit)

    @staticmethod
    def shape(rate: float, window: float = 1.0) -> tuple[int, float]:
        """The (limit, window) that allow ``rate`` sends per ``window`` seconds: ``floor(rate)``
        sends per slightly longer window, or for a rate below one, one send per
        ``window / rate``."""
        if rate >= 1:
            limit = math.floor(rate)
            return limit, window * limit / rate
        return 1, window / max(rate, 1e-9)

    def seed(self, sent: list[float]) -> None:
        """Record sends made before this pacer existed (sorted times), so that a limit learned
        mid-run counts what was already sent in the current window."""
        now = self._clock()
        recent = [t for t in sent if t > now - self.window - self.margin]
        merged = sorted([*self._sent, *recent])
        self._sent = deque(merged[-self.limit :], maxlen=self.limit)

    def move(self, sent: float, to: float) -> None:
        """Count the send recorded at ``sent`` (to within a millisecond) as made at ``to``
        instead: a request known to have left, hence reached the server, late."""
        times = self._sent
        i = bisect.bisect_left(times, sent - _SAME_SEND)
        if i < len(times) and times[i] <= sent + _SAME_SEND:
            del times[i]
            bisect.insort(times, to)

    def add_foreign(self, count: int) -> None:
        """Record ``count`` sends made now by someone else on the same quota."""
        now = self._clock()
        for _ in range(min(count, self.limit)):
            self._sent.append(now)

    async def acquire(self, gate: Callable[[], Awaitable[None]] | None = None) -> float:
        """Wait until one more send fits in the window, then for ``gate``; record and return
        the send time.

        ``gate`` (the shared 429 cooldown, or a narrower pacer) is awaited while holding the
        line, so that the time recorded is the real send time and no burst of queued senders
        leaves when it lifts.
        """
        async with self._lock:
            now = self._clock()
            wait = 0.0
            if self._sent:
                wait = self._sent[-1] + self.spread * self.window / self.limit - now
            if len(self._sent) == self.limit:
                wait = max(wait, self._sent[0] + self.window + self.margin - now)
            if wait > 0:
                await self._sleep(wait)
            if gate is not None:
                await gate()
            now = self._clock()
            self._sent.append(now)
            return now
