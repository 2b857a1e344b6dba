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
gap apart (0.9 of it by default): a burst of a whole window's sends reaches a server one after
another, and the last of them arrives late enough to fill the server's *next* window, which is
where most 429s at a known limit came from. Half the gap was the default first (bursts at
twice the rate, to make up for late wake-ups), but a server that stamps arrivals from a busy
event loop reads such bursts late and bunched: at 400 RPS on the strict arrival-time emulator
that drew 2-4 429s a run (each stopping every sender for its 1 s ``Retry-After``), 0.75 drew
one and 0.9 none (at 100 RPS the spread made no difference; ``benchmarks/README.md``). The
price: a late wake-up is made up only within a tenth of the gap, so a busy client loses some
(365-385 sends a second at a 400 RPS limit, measured). The limit can change while the run
works (a limit announced by the server, an estimate after a 429, a slow-down), and sends made
by others on the same quota can be recorded (:meth:`WindowPacer.add_foreign`).

Senders in this process wait in :meth:`WindowPacer.acquire`, in order of arrival, except that
a sender ``ahead`` (a retry) goes before every sender that is not: a row already tried should
not wait behind the ones not started yet. With more workers than the window lets go at once
the line is long (0.30-0.32 s at the median at 100 and at 400 RPS with the benchmark's
concurrency), and the retry of one of a run's last rows, queued behind it, ended the run that
much later. A row's retries are few, so a first attempt waits behind at most the retries of the
rows in flight.

A limiter shared by several processes books send times for them instead
(:meth:`WindowPacer.reserve`: the same earliest times under the same window, margin and
spread, possibly ahead of now) and takes back those not used (:meth:`WindowPacer.release`),
which frees their places for later bookings.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

import anyio

__all__ = ["WindowPacer"]

_SAME_SEND = 0.001
"""Two recorded times this close are one send (the pacers of one request record it µs apart)."""


class _Line:
    """One sender at a time, in order of arrival within two classes: those ``ahead`` first."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: tuple[deque[anyio.Event], deque[anyio.Event]] = (deque(), deque())
        """Those ahead, then the others."""

    @asynccontextmanager
    async def turn(self, ahead: bool) -> AsyncIterator[None]:
        """Hold the line while the body runs."""
        if self._held:
            line = self._waiting[0 if ahead else 1]
            mine = anyio.Event()
            line.append(mine)
            try:
                await mine.wait()
            except BaseException:
                if mine.is_set():  # handed the line, then cancelled: hand it on
                    self._hand_on()
                else:
                    line.remove(mine)
                raise
        else:
            self._held = True
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        for line in self._waiting:
            if line:
                line.popleft().set()  # held from now by that waiter
                return
        self._held = False


class WindowPacer:
    """At most ``limit`` sends (at least one) in any ``window + margin`` seconds.

    Waiters go in order of arrival, those ``ahead`` first (see the module docstring).
    """

    def __init__(
        self,
        limit: int,
        window: float = 1.0,
        *,
        margin: float = 0.010,
        spread: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if limit < 1 or window <= 0 or margin < 0 or not 0 <= spread <= 1:
            raise ValueError(f"limit >= 1, window > 0, margin >= 0 and 0 <= spread <= 1 needed, "
                             f"got {limit}, {window}, {margin}, {spread}")
        self.window = window
        self.margin = margin
        self.spread = spread
        self._limit = limit
        self._sent: deque[float] = deque()
        """Send times, sorted (booked ones may lie ahead of now): every one that can still
        matter (the last ``limit``, and any in the last widened window)."""
        self._line = _Line()
        self._clock = clock
        self._sleep = sleep

    @property
    def limit(self) -> int:
        """Sends allowed in one window."""
        return self._limit

    @property
    def rate(self) -> float:
        """Sends a second this pacer allows at most (margin aside)."""
        return self.limit / self.window

    def configure(self, limit: int, window: float | None = None) -> None:
        """Allow ``limit`` sends per ``window`` seconds from now on (the recent sends still
        count)."""
        if window is not None and window > 0:
            self.window = window
        self._limit = max(1, int(limit))

    @staticmethod
    def shape(rate: float, window: float = 1.0) -> tuple[int, float]:
        """The (limit, window) that allow ``rate`` sends per ``window`` seconds: ``floor(rate)``
        sends per slightly longer window, or for a rate below one, one send per
        ``window / rate``."""
        if rate >= 1:
            limit = math.floor(rate)
            return limit, window * limit / rate
        return 1, window / max(rate, 1e-9)

    def count_between(self, start: float, end: float) -> int:
        """Recorded sends with ``start <= t < end`` (the last ``limit`` and those of the last
        widened window are kept)."""
        sent = self._sent
        return bisect.bisect_left(sent, end) - bisect.bisect_left(sent, start)

    def seed(self, sent: list[float]) -> None:
        """Record sends made before this pacer existed (sorted times), so that a limit learned
        mid-run counts what was already sent in the current window."""
        now = self._clock()
        recent = [t for t in sent if t > now - self.window - self.margin]
        self._sent = deque(sorted([*self._sent, *recent]))
        self._forget(now)

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
            bisect.insort(self._sent, now)  # before any send booked ahead

    async def acquire(self, gate: Callable[[], Awaitable[None]] | None = None, *, ahead: bool = False) -> float:
        """Wait until one more send fits in the window, then for ``gate``; record and return
        the send time. ``ahead`` goes before every waiter that is not.

        ``gate`` (the shared 429 cooldown, or a narrower pacer) is awaited while holding the
        line, so that the time recorded is the real send time and no burst of queued senders
        leaves when it lifts.
        """
        async with self._line.turn(ahead):
            now = self._clock()
            wait = self._earliest(now) - now
            if wait > 0:
                await self._sleep(wait)
            if gate is not None:
                await gate()
            now = self._clock()
            self._sent.append(now)
            self._forget(now)
            return now

    def reserve(self, n: int, *, not_before: float = -math.inf, until: float = math.inf) -> list[float]:
        """Book up to ``n`` sends for someone else, at the earliest times that fit (as
        :meth:`acquire` would let them go, one after another), none before ``not_before`` and
        none after ``until`` except the first: at least one is booked. Returns the times, in
        order, on this pacer's clock; give back those not used with :meth:`release`."""
        now = self._clock()
        self._forget(now)
        times: list[float] = []
        while len(times) < n:
            at = self._earliest(max(now, not_before))
            if times and at > until:
                break
            self._sent.append(at)
            times.append(at)
        return times

    def release(self, times: Iterable[float]) -> None:
        """Forget booked sends that were not made, so that their places can be booked again."""
        for at in times:
            self._remove(at)

    def earliest(self, not_before: float = -math.inf) -> float:
        """The earliest time, from now and ``not_before`` on, that one more send fits (what
        :meth:`reserve` would book)."""
        now = self._clock()
        self._forget(now)
        return self._earliest(max(now, not_before))

    def _earliest(self, at: float) -> float:
        """The earliest time from ``at`` one more send fits: after the last one (by the
        spread) and a widened window after the ``limit``-th last."""
        sent = self._sent
        if sent:
            at = max(at, sent[-1] + self.spread * self.window / self.limit)
        if len(sent) >= self.limit:
            at = max(at, sent[-self.limit] + self.window + self.margin)
        return at

    def _forget(self, now: float) -> None:
        """Drop sends that can no longer matter: beyond the last ``limit`` and older than the
        widened window."""
        sent, oldest = self._sent, now - self.window - self.margin
        while len(sent) > self.limit and sent[0] <= oldest:
            sent.popleft()

    def _remove(self, at: float) -> bool:
        """Remove one send recorded at ``at``; False when there is none."""
        i = bisect.bisect_left(self._sent, at)
        if i < len(self._sent) and self._sent[i] == at:
            del self._sent[i]
            return True
        return False
