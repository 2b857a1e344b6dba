"""The emulator's rate limits: a strict per-second request window and per-minute tokens.

Limits are kept per API key, like a workspace's limits on the hosted API. A request that does
not fit is refused with a wait: the time until enough of the window has expired for it to fit.
The same object remembers, per key, until when the last 429 told the client to stay away, so
that requests arriving earlier are counted as Retry-After violations.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["IN_FLIGHT_GRACE_S", "Admission", "RateLimiter"]

_TOKEN_WINDOW_S = 60.0
_REQUEST_WINDOW_S = 1.0
_EARLY_TOLERANCE_S = 0.001
"""Arrivals this close to the end of a cooldown are not counted as early (float noise)."""
IN_FLIGHT_GRACE_S = 0.025
"""Requests arriving within this time after a 429 are taken as sent before the client could
have read it: the network round trip plus a busy client event loop's lag (measured 1-16 ms for
batchjudge's engine at the start of a run on 2 cores). A client without a shared cooldown
keeps sending for the whole Retry-After (up to a second), so it still shows clearly."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's answer for one request."""

    allowed: bool
    retry_after_s: float = 0.0
    """Seconds until the request would fit (0 when allowed)."""
    headers: dict[str, str] = field(default_factory=dict)
    """``x-ratelimit-*`` headers (plus ``Retry-After`` and ``retry-after-ms`` on a refusal)."""
    too_large: bool = False
    """The request alone exceeds the tokens-per-minute limit: it can never fit."""
    exceeded: str = ""
    """Which limit refused it: ``"requests per second"`` or ``"tokens per minute"``."""


@dataclass(slots=True)
class _KeyState:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    tokens_used: int = 0
    cooldown_until: float = 0.0
    refused_at: float = float("-inf")
    early_arrivals: int = 0
    violations: int = 0


class RateLimiter:
    """Strict sliding windows: at most ``rps`` requests in any 1 s and ``tpm`` tokens in any 60 s.

    ``rps``/``tpm`` of ``None`` mean unlimited. A fractional ``rps`` is rounded down (at least 1).
    """

    def __init__(
        self,
        rps: float | None,
        tpm: int | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rps_capacity = max(1, int(rps)) if rps else None
        self.tpm = tpm if tpm else None
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self.early_arrivals = 0
        """Arrivals before their key's cooldown ended, including those already on the wire."""
        self.violations = 0
        """Early arrivals sent after the client could have read the 429 (beyond the grace)."""

    def _state(self, key: str) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
        return state

    def arrive(self, key: str) -> bool:
        """Note an arrival; True if it came before its key's cooldown ended.

        Such an arrival counts as a Retry-After *violation* only when it comes more than
        :data:`IN_FLIGHT_GRACE_S` after the 429: a request that reaches the server a few
        milliseconds after the refusal was sent before the client could have read it.
        """
        state = self._state(key)
        now = self._clock()
        early = now < state.cooldown_until - _EARLY_TOLERANCE_S
        if early:
            self.early_arrivals += 1
            state.early_arrivals += 1
            if now - state.refused_at > IN_FLIGHT_GRACE_S:
                self.violations += 1
                state.violations += 1
        return early

    def admit(self, key: str, tokens: int) -> Admission:
        """Charge one request of ``tokens`` prompt tokens, or refuse it with the wait."""
        now = self._clock()
        state = self._state(key)
        requests, token_log = state.requests, state.tokens
        while requests and requests[0] <= now - _REQUEST_WINDOW_S:
            requests.popleft()
        while token_log and token_log[0][0] <= now - _TOKEN_WINDOW_S:
            state.tokens_used -= token_log.popleft()[1]

        if self.tpm is not None and tokens > self.tpm:
            return Admission(False, headers=self._headers(state), too_large=True)
        wait, exceeded = 0.0, ""
        if self.rps_capacity is not None and len(requests) >= self.rps_capacity:
            wait = requests[len(requests) - self.rps_capacity] + _REQUEST_WINDOW_S - now
            exceeded = "requests per second"
        if self.tpm is not None and state.tokens_used + tokens > self.tpm:
            freed, excess = 0, state.tokens_used + tokens - self.tpm
            for stamp, spent in token_log:
                freed += spent
                if freed >= excess:
                    if stamp + _TOKEN_WINDOW_S - now > wait:
                        wait, exceeded = stamp + _TOKEN_WINDOW_S - now, "tokens per minute"
                    break
        if wait > 0.0:
            headers = {**self._headers(state), **self.cooldown(key, wait)}
            return Admission(False, wait, headers, exceeded=exceeded)

        requests.append(now)
        if tokens:
            token_log.append((now, tokens))
            state.tokens_used += tokens
        return Admission(True, 0.0, self._headers(state, tokens))

    def counts(self, key: str) -> tuple[int, int]:
        """``(early arrivals, violations)`` of one key."""
        state = self._state(key)
        return state.early_arrivals, state.violations

    def cooldown(self, key: str, seconds: float) -> dict[str, str]:
        """Impose a cooldown on ``key`` (an injected 429) and return its Retry-After headers."""
        state = self._state(key)
        state.refused_at = self._clock()
        state.cooldown_until = max(state.cooldown_until, state.refused_at + seconds)
        return {
            "retry-after": str(max(1, math.ceil(seconds))),
            "retry-after-ms": str(max(1, math.ceil(seconds * 1000.0))),
        }

    def charge(self, key: str, tokens: int) -> None:
        """Add tokens spent after admission (the completion) to the key's minute window."""
        if tokens <= 0:
            return
        state = self._state(key)
        state.tokens.append((self._clock(), tokens))
        state.tokens_used += tokens

    def _headers(self, state: _KeyState, cost: int = 0) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.rps_capacity is not None:
            headers["x-ratelimit-limit-req-second"] = str(self.rps_capacity)
            remaining = max(0, self.rps_capacity - len(state.requests))
            headers["x-ratelimit-remaining-req-second"] = str(remaining)
        if self.tpm is not None:
            headers["x-ratelimit-limit-tokens-minute"] = str(self.tpm)
            remaining = max(0, self.tpm - state.tokens_used)
            headers["x-ratelimit-remaining-tokens-minute"] = str(remaining)
            headers["x-ratelimit-tokens-query-cost"] = str(cost)
        return headers
