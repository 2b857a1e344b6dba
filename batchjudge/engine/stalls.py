"""The server's stalls, read from the gaps between its replies.

A server that counts its rate window by arrival stamps a request when its event loop reads
it. When that loop stops for a while (a garbage collection, a busy machine), the requests that
reach it meanwhile are stamped together when it resumes, later than they were sent. The sends
paced one window after them then arrive, by the server's stamps, less than a window later, and
the server refuses one: a 429, and a pause of every sender for its ``Retry-After``, one second
after the stall. Against the strict emulator at a known 400 RPS, the request refused in each
of three mid-run 429s had left 0.98-0.99 s after the end of the longest gap between replies
of the second before it (32-44 ms); the pacer's margin (10 ms) absorbs shorter ones.

The client cannot see the server's stamps, but it sees the stall: no reply for a while though
requests are in flight, then the ones held back. :class:`StallWatch` takes a gap longer than
the pacer's margin and than :data:`INTERVALS` mean reply intervals for the end of a stall, and
names the requests sent during it, whose places in the windows then move to when it ended: the
sends paced a window after them wait for that. A gap that was only chance costs more than its
length: the sends moved to one instant cannot leave together a window later (the pacer keeps
sends 0.9 of the average gap apart), and the sends behind them wait until that clears. Four
intervals (1.8% of chance gaps) took 2-3 points off a known 100 RPS run against the emulator
(three A/B pairs of a throwaway driver, benchmarks/README.md: 94.7-96.6% of the window used
against 96.7-98.8%); six (0.25%) are the bar.
A stall shorter than that goes unseen: 60 ms at 100 RPS, 15 ms at 400 RPS, where the stalls that
drew 429s were 32-44 ms long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["INTERVALS", "StallWatch"]

INTERVALS = 6.0
"""A reply gap this many mean intervals long is taken for a stall (chance: e^-6, 0.25%)."""
_EARLIER = 0.002
"""Sends this much before the last reply ahead of a gap may have been read after it."""


class _Sent(Protocol):
    sent_at: float
    """When the request left (it may move after :meth:`StallWatch.sent`)."""


R = TypeVar("R", bound=_Sent)


class StallWatch(Generic[R]):
    """The requests in flight (each with its ``sent_at``) and the replies' arrival times;
    :meth:`replied` names the requests a stall held back.

    ``floor`` is the shortest gap taken for a stall: the pacer's margin, which absorbs
    shorter ones.
    """

    def __init__(self, clock: Callable[[], float], *, floor: float = 0.010) -> None:
        self._clock = clock
        self.floor = floor
        self._in_flight: dict[int, R] = {}
        self._replies: deque[float] = deque()
        """Reply times of the last second (their count is the reply rate)."""

    def sent(self, request: R) -> None:
        """``request`` left (its send time is set)."""
        self._in_flight[id(request)] = request

    def done(self, request: R) -> None:
        """``request`` is over, however it ended."""
        self._in_flight.pop(id(request), None)

    def replied(self) -> list[R]:
        """A reply came in now: when it ends a stall, the requests in flight sent during it
        (from just before the reply ahead of the gap until now), else none."""
        now = self._clock()
        replies = self._replies
        last = replies[-1] if replies else None
        replies.append(now)
        while replies[0] <= now - 1.0:
            replies.popleft()
        if last is None or now - last < max(self.floor, INTERVALS / len(replies)):
            return []
        since = last - _EARLIER
        return [r for r in self._in_flight.values() if since < r.sent_at <= now]
