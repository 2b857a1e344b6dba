"""The emulator's rate limits, kept per API key: strict rolling windows on arrival times.

Four limits, each optional (``None``: unlimited), as the hosted API sets them per organisation
(the emulator's API key stands for an organisation):

- ``requests-second`` (``--rps``): at most N requests admitted in any 1 s. A request arriving
  while N others were admitted in the second before it is refused; the window rolls with each
  arrival (no fixed buckets), so N admitted at once free one slot each exactly 1 s after their
  own arrival.
- ``requests-minute`` (``--rpm``): the same over any 60 s.
- ``tokens-minute`` (``--tpm``): at most T tokens charged in any 60 s. A request is charged its
  full cost, prompt plus completion tokens, when its body has been read (before any answer
  latency); it is refused unless that whole cost fits in what the window has left, so the
  window never goes over its limit. A request costing more than T can never fit (400).
- ``tokens-month`` (``--tokens-per-month``): a budget that never refills while the server runs
  (no run lasts a month); once spent, every request is refused and no wait will help.

A request refused by a request window does not use it up; a request admitted by the request
windows and then refused by a token limit stays counted in the request windows (the hosted
API's gateway counts a request before its body is looked at).

Each window keeps its admitted amounts in arrival order with running totals, so expiring,
checking and computing the wait are O(1) amortised (O(log n) for a token wait): no scans.

The same object remembers, per key, until when the last 429 told the client to stay away, so
that requests arriving earlier are counted as early arrivals and Retry-After violations.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "IN_FLIGHT_GRACE_S",
    "REQUESTS_MINUTE",
    "REQUESTS_SECOND",
    "TOKENS_MINUTE",
    "TOKENS_MONTH",
    "Admission",
    "Limits",
    "RateLimiter",
    "Reading",
    "SlidingWindow",
]

REQUESTS_SECOND = "requests-second"
REQUESTS_MINUTE = "requests-minute"
TOKENS_MINUTE = "tokens-minute"
TOKENS_MONTH = "tokens-month"

_EARLY_TOLERANCE_S = 0.001
"""Arrivals this close to the end of a cooldown are not counted as early (float noise)."""
IN_FLIGHT_GRACE_S = 0.025
"""Requests arriving within this time after a 429 are taken as sent before the client could
have read it: the network round trip plus a busy client event loop's lag (measured 1-16 ms for
batchjudge's engine at the start of a run on 2 cores). A client without a shared cooldown
keeps sending for the whole Retry-After (up to a second), so it still shows clearly."""
_COMPACT_AT = 4096
"""Expired entries kept before a window's lists are compacted (amortises the copy)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The four limits of every API key; ``None`` means unlimited."""

    rps: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    tokens_per_month: int | None = None

    def describe(self) -> dict[str, int | None]:
        """The limits by window name (for ``/stats``)."""
        return {
            REQUESTS_SECOND: self.rps,
            REQUESTS_MINUTE: self.rpm,
            TOKENS_MINUTE: self.tpm,
            TOKENS_MONTH: self.tokens_per_month,
        }


class SlidingWindow:
    """Amounts admitted in the last ``span`` seconds against a ``limit``; O(1) amortised.

    Entries are kept in arrival order with the running total after each, so the amount in the
    window is a difference of two totals, and the time until an amount fits is a binary search
    for the entry whose expiry frees enough.
    """

    __slots__ = (
        "_base",
        "_cumulative",
        "_expired_at",
        "_head",
        "_stamps",
        "_total",
        "limit",
        "peak",
        "span",
    )

    def __init__(self, span: float, limit: int) -> None:
        self.span = span
        self.limit = limit
        self.peak = 0
        """The most the window ever held (how close a client came to the limit)."""
        self._stamps: list[float] = []
        self._cumulative: list[int] = []
        self._head = 0
        self._base = 0
        self._total = 0
        self._expired_at = -math.inf

    def _expire(self, now: float) -> None:
        if now == self._expired_at:  # a request reads its windows several times at one instant
            return
        self._expired_at = now
        stamps, head = self._stamps, self._head
        edge = now - self.span
        if head == len(stamps) or stamps[head] > edge:
            return
        while head < len(stamps) and stamps[head] <= edge:
            head += 1
        self._base = self._cumulative[head - 1]
        if head >= _COMPACT_AT and head * 2 >= len(stamps):
            del stamps[:head]
            del self._cumulative[:head]
            head = 0
        self._head = head

    def used(self, now: float) -> int:
        """The amount in the window at ``now``."""
        self._expire(now)
        return self._total - self._base

    def wait(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` more fits: 0 if it fits now, ``inf`` if it never can."""
        excess = self.used(now) + amount - self.limit
        if excess <= 0:
            return 0.0
        if amount > self.limit:
            return math.inf
        first = bisect.bisect_left(self._cumulative, self._base + excess, lo=self._head)
        return max(0.0, self._stamps[first] + self.span - now)

    def add(self, amount: int, now: float) -> None:
        """Admit ``amount`` at ``now`` (never earlier than the last entry)."""
        if self._stamps and now < self._stamps[-1]:
            now = self._stamps[-1]
        self._total += amount
        self._stamps.append(now)
        self._cumulative.append(self._total)
        used = self.used(now)
        if used > self.peak:
            self.peak = used

    def empty_in(self, now: float) -> float:
        """Seconds until everything in the window has expired (0 when it is empty)."""
        if self.used(now) == 0:
            return 0.0
        return max(0.0, self._stamps[-1] + self.span - now)

    def reading(self, name: str, now: float) -> Reading:
        """The window as a reply reports it."""
        used = self.used(now)
        empty_in = max(0.0, self._stamps[-1] + self.span - now) if used else 0.0
        return Reading(name, self.limit, max(0, self.limit - used), empty_in)


class _Budget:
    """A token budget that never refills (the month, for the life of the server)."""

    __slots__ = ("limit", "peak", "spent")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self.peak = 0

    def used(self, now: float) -> int:
        return self.spent

    def wait(self, amount: int, now: float) -> float:
        return 0.0 if self.spent + amount <= self.limit else math.inf

    def add(self, amount: int, now: float) -> None:
        self.spent += amount
        self.peak = self.spent

    def empty_in(self, now: float) -> float:
        return math.inf if self.spent else 0.0

    def reading(self, name: str, now: float) -> Reading:
        return Reading(name, self.limit, max(0, self.limit - self.spent), self.empty_in(now))


class Reading(NamedTuple):
    """One window of one key as a reply reports it."""

    window: str
    limit: int
    remaining: int
    empty_in_s: float
    """Seconds until the window is back to its full limit (``inf`` for the month budget)."""


class Admission(NamedTuple):
    """The limiter's answer for one request."""

    allowed: bool
    refused_by: str = ""
    """The window that refused it (one of the window names), ``""`` when allowed."""
    wait_s: float = 0.0
    """Seconds until it would fit; ``inf`` when waiting cannot help (month budget, too large)."""
    too_large: bool = False
    """The request alone costs more than the tokens-per-minute limit: it can never fit."""
    cost: int | None = None
    """Tokens charged (``None`` until the token limits have looked at the request)."""


_ADMITTED = Admission(True)


@dataclass(slots=True)
class _KeyState:
    windows: dict[str, SlidingWindow | _Budget]
    request_windows: list[tuple[str, SlidingWindow | _Budget]]
    token_windows: list[tuple[str, SlidingWindow | _Budget]]
    cooldown_until: float = 0.0
    refused_at: float = float("-inf")
    early_arrivals: int = 0
    violations: int = 0
    admitted_requests: int = 0
    admitted_tokens: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    first_admitted: float | None = None
    admitted_per_second: list[int] = field(default_factory=list)
    """Requests admitted in each whole second since the first admitted one: how much of the
    window a client used, second by second."""


_REQUEST_WINDOWS = (REQUESTS_SECOND, REQUESTS_MINUTE)


class RateLimiter:
    """The four limits of :class:`Limits`, per API key, on an injectable monotonic clock."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._keys: dict[str, _KeyState] = {}
        self.early_arrivals = 0
        """Arrivals before their key's cooldown ended, including those already on the wire."""
        self.violations = 0
        """Early arrivals sent after the client could have read the 429 (beyond the grace)."""

    def _new_key(self) -> _KeyState:
        windows: dict[str, SlidingWindow | _Budget] = {}
        lim = self.limits
        if lim.rps is not None:
            windows[REQUESTS_SECOND] = SlidingWindow(1.0, lim.rps)
        if lim.rpm is not None:
            windows[REQUESTS_MINUTE] = SlidingWindow(60.0, lim.rpm)
        if lim.tpm is not None:
            windows[TOKENS_MINUTE] = SlidingWindow(60.0, lim.tpm)
        if lim.tokens_per_month is not None:
            windows[TOKENS_MONTH] = _Budget(lim.tokens_per_month)
        requests = [(n, w) for n, w in windows.items() if n in _REQUEST_WINDOWS]
        tokens = [(n, w) for n, w in windows.items() if n not in _REQUEST_WINDOWS]
        return _KeyState(windows, requests, tokens)

    def _state(self, key: str) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = self._new_key()
        return state

    @property
    def counts_tokens(self) -> bool:
        """Whether any token limit is set (so a reply reports its token cost)."""
        return self.limits.tpm is not None or self.limits.tokens_per_month is not None

    def arrive(self, key: str) -> float:
        """Note an arrival and return its time; count it if it came before its cooldown ended.

        Such an arrival counts as a Retry-After *violation* only when it comes more than
        :data:`IN_FLIGHT_GRACE_S` after the 429: a request that reaches the server a few
        milliseconds after the refusal was sent before the client could have read it.
        """
        state = self._state(key)
        now = self.clock()
        if now < state.cooldown_until - _EARLY_TOLERANCE_S:
            self.early_arrivals += 1
            state.early_arrivals += 1
            if now - state.refused_at > IN_FLIGHT_GRACE_S:
                self.violations += 1
                state.violations += 1
        return now

    @staticmethod
    def _check(
        state: _KeyState,
        windows: list[tuple[str, SlidingWindow | _Budget]],
        amount: int,
        now: float,
    ) -> Admission:
        """Admit ``amount`` into every window at ``now``, or refuse with the longest wait."""
        wait, refused_by = 0.0, ""
        for name, window in windows:
            needed = window.wait(amount, now)
            if needed > wait:
                wait, refused_by = needed, name
        if refused_by:
            state.refused[refused_by] += 1
            return Admission(False, refused_by, wait)
        for _, window in windows:
            window.add(amount, now)
        return _ADMITTED

    def admit_request(self, key: str, now: float) -> Admission:
        """Admit one request arriving at ``now`` into the request windows, or refuse it."""
        state = self._state(key)
        admission = self._check(state, state.request_windows, 1, now)
        if admission.allowed:
            state.admitted_requests += 1
            if state.first_admitted is None:
                state.first_admitted = now
            second = int(now - state.first_admitted)
            per_second = state.admitted_per_second
            if second >= len(per_second):
                per_second.extend([0] * (second + 1 - len(per_second)))
            per_second[second] += 1
        return admission

    def admit_tokens(self, key: str, cost: int) -> Admission:
        """Charge an admitted request's token ``cost`` now, or refuse it with the wait."""
        state = self._state(key)
        now = self.clock()
        minute = state.windows.get(TOKENS_MINUTE)
        if minute is not None and cost > minute.limit:
            state.refused[TOKENS_MINUTE] += 1
            return Admission(False, TOKENS_MINUTE, math.inf, too_large=True, cost=cost)
        admission = self._check(state, state.token_windows, cost, now)
        if not admission.allowed:
            return Admission(False, admission.refused_by, admission.wait_s, cost=cost)
        state.admitted_tokens += cost
        return Admission(True, cost=cost)

    def readings(self, key: str) -> list[Reading]:
        """Every limited window of ``key``, as it stands now."""
        now = self.clock()
        return [w.reading(name, now) for name, w in self._state(key).windows.items()]

    def cooldown(self, key: str, seconds: float) -> None:
        """Note that ``key`` was just told to wait ``seconds`` (a Retry-After it was sent)."""
        state = self._state(key)
        state.refused_at = self.clock()
        state.cooldown_until = max(state.cooldown_until, state.refused_at + seconds)

    def counts(self, key: str) -> tuple[int, int]:
        """``(early arrivals, violations)`` of one key."""
        state = self._state(key)
        return state.early_arrivals, state.violations

    def report(self, key: str) -> dict[str, Any]:
        """What ``/stats`` shows of one key's limits: admitted, refused, and each window."""
        state = self._state(key)
        now = self.clock()
        return {
            "admitted_requests": state.admitted_requests,
            "admitted_per_second": list(state.admitted_per_second),
            "admitted_tokens": state.admitted_tokens,
            "refused_by": dict(sorted(state.refused.items())),
            "windows": {
                name: {"limit": w.limit, "used": w.used(now), "peak": w.peak}
                for name, w in state.windows.items()
            },
        }
