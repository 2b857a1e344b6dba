"""How many requests a run keeps in flight: sized from the pace and the measured latency.

A run paced at R requests a second whose replies take L seconds needs R x L requests in flight
to send at its pace (Little's law); fewer caps it below the limit (the former fixed 16 held a
300 ms server to about 50 requests a second), many more only hold memory and connections.
The rule (:func:`size_concurrency`, a pure function of plain data) takes a high percentile of
the recent latencies rather than the mean, so that the slow tail does not starve the pace,
times a margin, bounded by the run's ceiling (``--concurrency``, else :func:`default_ceiling`).

- Before :attr:`SizingTuning.min_samples` replies there is no latency to go by: the run starts
  at :attr:`SizingTuning.start`.
- With a pace in force (a flag, a limit announced or estimated, a token rate over the tokens a
  request is expected to use), the size is ``pace x p90 x margin``: it follows the pace down
  (a 429 cut it, an estimate replaced a flag set too high) as well as up.
- With no pace known (no flag, the server announces nothing, no 429 yet), the size grows from
  the measured reply rate: ``rate x p90 x growth``, growing severalfold once per latency like TCP's
  slow start, and never shrinks (a pause is not a slower server) until a pace is known.

:class:`Sizer` is the mechanism: it keeps the latency samples and reply times, asks the rule at
most every :attr:`SizingTuning.every_s` and resizes an :class:`anyio.CapacityLimiter`. A
limiter resized below what is borrowed keeps every slot already taken (those requests finish)
and lets no new one in until enough return; raised, it wakes its waiters in order. Clock
injectable, like every other part of the send path.
"""

from __future__ import annotations

import math
import resource
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

__all__ = ["MEMORY_CAP", "TUNING", "Sizer", "Sizing", "SizingTuning", "default_ceiling", "size_concurrency"]

MEMORY_CAP = 1024
"""The most requests in flight without ``--concurrency``. One in-flight request holds a worker
task and its row (a few KB), the request body (the prompt: a few KB), a connection (a socket
and its buffers: about 64 KB with TLS) and, while it is read, its reply (up to the 1 MiB reply
cap, a few KB in practice): about 100 KB, so 1,024 of them about 100 MB, a 1 GiB worst case.
At 1,024 a run keeps up with 340 requests a second at a p90 of 2.4 s (margin included): above
what an organization is usually allowed, with replies slower than a judge's."""


@dataclass(frozen=True, slots=True)
class SizingTuning:
    """Every number of the sizing rule, in one place."""

    start: int = 32
    """Requests in flight before the latency is known (the first replies): enough for 100
    requests a second at 300 ms within the first second, few enough not to burst far past a
    limit nobody announced."""
    min_samples: int = 8
    """Replies measured before the first sizing."""
    samples: int = 256
    """The recent latencies the percentile is taken over (a sliding window of replies)."""
    percentile: float = 0.9
    """Which latency the rule sizes for: the tail, not the mean, or slow replies starve the pace."""
    margin: float = 1.25
    """Room above ``pace x latency`` for retries, the latency's drift and the pacer's bursts."""
    growth: float = 4.0
    """With no pace known: the size is this many times what the measured reply rate needs. At 2
    a silent 400 RPS server was reached only after 1.5-2 s, and the pause of the first 429
    episode came that much later (the steady window use of an 8 s run fell from 94% to 83%)."""
    rate_window_s: float = 1.0
    """The measured reply rate is taken over this many recent seconds."""
    floor: int = 16
    """Never fewer in flight than this (or the ceiling, when lower): the former fixed default.
    Sized tight for a fast server (5 for 100/s at 50 ms), the replies came in bunches after any
    hiccup of the server, and the stall watch took the gaps between bunches for stalls."""
    every_s: float = 0.25
    """The rule is asked at most this often (it sorts the samples)."""


TUNING = SizingTuning()


@dataclass(frozen=True, slots=True)
class Sizing:
    """How many requests may be in flight, and why (shown on the progress line and in
    ``run.json``'s ``limits``)."""

    concurrency: int
    reason: str

    def describe(self) -> str:
        """``in flight 53 (100/s x p90 0.42 s x 1.25)``."""
        return f"in flight {self.concurrency} ({self.reason})"


def size_concurrency(
    *, pace: float | None, latencies: Sequence[float], ceiling: int, current: int = 0,
    measured_rate: float = 0.0, tuning: SizingTuning = TUNING,
) -> Sizing:
    """The requests to keep in flight (module docstring): ``pace`` the requests a second in
    force (None: none known), ``latencies`` recent reply times in seconds, ``ceiling`` the most
    allowed, ``current`` the size now and ``measured_rate`` the replies a second lately (both
    used only while no pace is known)."""
    low = min(tuning.floor, ceiling)
    if len(latencies) < tuning.min_samples:
        return _bounded(tuning.start, low, ceiling, "start: no latency measured yet")
    tail = percentile(latencies, tuning.percentile)
    p = f"p{tuning.percentile * 100:g} {tail:.2f} s"
    if pace is not None:
        wanted = math.ceil(pace * tail * tuning.margin)
        return _bounded(wanted, low, ceiling, f"{pace:.4g}/s x {p} x {tuning.margin:g}")
    wanted = max(current, math.ceil(measured_rate * tail * tuning.growth))
    return _bounded(wanted, low, ceiling, f"no limit known: {measured_rate:.4g}/s measured x {p} x {tuning.growth:g}")


def _bounded(wanted: int, low: int, ceiling: int, reason: str) -> Sizing:
    if wanted >= ceiling:
        return Sizing(ceiling, f"ceiling; {reason}")
    return Sizing(max(low, wanted), reason)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank; ``values`` not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def default_ceiling() -> int:
    """The ceiling without ``--concurrency``: :data:`MEMORY_CAP`, or half the process's
    open-file limit when that is lower (every request in flight may hold a connection, and a
    run that runs out of descriptors fails its requests)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return MEMORY_CAP
    return max(1, min(MEMORY_CAP, soft // 2))


class Sizer:
    """Resizes ``limiter`` as the rule says, from the replies it is told of (the mechanism
    beside :func:`size_concurrency`). ``ceiling`` bounds it; :meth:`cap` lowers the ceiling for
    a while (the limits' answer to repeated 429 episodes). ``fixed``: the rule is never asked,
    the size is the ceiling in force (a distributed run's shared limiter, whose workers' replies
    it does not time)."""

    def __init__(self, limiter: anyio.CapacityLimiter, ceiling: int, *, clock: Callable[[], float] = time.monotonic,
                 tuning: SizingTuning = TUNING, fixed: bool = False) -> None:
        self.limiter = limiter
        self.ceiling = ceiling
        self.tuning = tuning
        self.fixed = fixed
        self._clock = clock
        self._started = clock()
        self._latencies: deque[float] = deque(maxlen=tuning.samples)
        self._replies: deque[float] = deque()
        self._asked = -math.inf
        self._cap = ceiling
        self.sizing = self._fixed() if fixed else size_concurrency(pace=None, latencies=(), ceiling=ceiling, tuning=tuning)
        limiter.total_tokens = self.sizing.concurrency

    def replied(self, latency: float) -> None:
        """A reply came back ``latency`` seconds after its request left."""
        if latency >= 0:
            self._latencies.append(latency)
        self._replies.append(self._clock())

    def cap(self, most: int) -> None:
        """Keep at most ``most`` in flight (at least one) until raised again; applied at once."""
        self._cap = max(1, min(self.ceiling, most))
        self._asked = -math.inf

    @property
    def capped(self) -> int:
        """The ceiling in force (:meth:`cap`)."""
        return self._cap

    def resize(self, pace: float | None) -> bool:
        """Ask the rule (at most every ``every_s``) with ``pace`` the requests a second in force
        and apply its answer; True when the size or its reason changed."""
        now = self._clock()
        if now - self._asked < self.tuning.every_s:
            return False
        self._asked = now
        sizing = self._fixed() if self.fixed else size_concurrency(
            pace=pace, latencies=self._latencies, ceiling=self._cap, current=int(self.limiter.total_tokens),
            measured_rate=self._rate(now), tuning=self.tuning,
        )
        if sizing == self.sizing:
            return False
        self.sizing = sizing
        self.limiter.total_tokens = sizing.concurrency
        return True

    def _fixed(self) -> Sizing:
        lowered = "" if self._cap == self.ceiling else f", lowered by 429s from {self.ceiling}"
        return Sizing(self._cap, f"the ceiling{lowered}: each worker sizes its share")

    def _rate(self, now: float) -> float:
        replies, window = self._replies, self.tuning.rate_window_s
        while replies and replies[0] < now - window:
            replies.popleft()
        span = min(window, now - self._started)
        return len(replies) / span if span > 0 else 0.0
