"""Limits and retries shared by every worker: pacing, the 429 cooldown, adaptive concurrency.

One :class:`Limits` object is shared by all workers of a run:

- ``rps``: a :class:`~batchjudge.engine.pacing.WindowPacer` keeps at most ``rps`` sends in any
  1.03 s, the shape of the server's own limit, so delays are made up rather than lost.
- ``tpm``: a token bucket charged with the request's counted prompt tokens plus the expected
  completion (a running mean of replies), then corrected by the usage the reply reports.
- A 429's ``Retry-After`` sets one shared cooldown; every worker checks it right before it
  sends (after the pacer), so no request leaves before the server said it may.
- Concurrency is a resizable :class:`anyio.CapacityLimiter`: repeated 429s shrink it, a calm
  stretch of successes grows it back to the configured ceiling.

:func:`call_with_retries` applies tenacity around one provider call: 429, 5xx, timeouts and
connection errors back off exponentially with full jitter (or exactly ``Retry-After`` when the
server gave one) up to ``max_retries``; other errors fail the row at once; an auth failure
stops the run. Clock and sleep are injectable so tests need not wait.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from batchjudge.engine.pacing import WindowPacer
from batchjudge.engine.stats import RunStats
from batchjudge.core.types import JudgeReply, JudgeRequest, Provider, RetryDecision, RetryKind
from batchjudge.errors import AuthError, ProviderError, TransientError

__all__ = ["CallOutcome", "Cooldown", "Limits", "RefundableLimiter", "call_with_retries"]

class RefundableLimiter(AsyncLimiter):
    """An :class:`AsyncLimiter` whose charge can be corrected down after the fact.

    The TPM bucket charges an estimate before sending; when the reply reports fewer tokens,
    the difference is given back so the next request is not held for tokens never used.
    """

    def refund(self, amount: float) -> None:
        """Give back ``amount`` previously acquired (never below empty)."""
        if amount > 0:
            self._level = max(0.0, self._level - amount)
            self._wake_next()


class Cooldown:
    """One shared pause: after a 429 with ``Retry-After``, nobody sends until it expires."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self.until = 0.0

    def extend(self, seconds: float) -> None:
        """Pause every worker for ``seconds`` from now (never shortens a pause)."""
        self.until = max(self.until, self._clock() + seconds)

    async def wait(self) -> None:
        """Return once no cooldown is active (re-checking, since it may be extended)."""
        while (remaining := self.until - self._clock()) > 0:
            await self._sleep(remaining)


@dataclass(slots=True)
class CallOutcome:
    """How one row's calls ended."""

    reply: JudgeReply | None
    error: str | None
    attempts: int
    latency_ms: float | None
    fatal: BaseException | None = None


class Limits:
    """The rate, token and concurrency limits one run shares across its workers."""

    def __init__(
        self,
        *,
        concurrency: int,
        rps: float | None = None,
        tpm: float | None = None,
        expected_completion_tokens: int = 64,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        adapt_after_429s: int = 3,
        calm_successes: int = 50,
        pace_margin: float = 0.03,
    ) -> None:
        self.max_concurrency = concurrency
        self.capacity = anyio.CapacityLimiter(concurrency)
        self.rps = rps
        self._rps = WindowPacer(rps, margin=pace_margin, clock=clock, sleep=sleep) if rps else None
        self.tpm = tpm
        self._tpm = RefundableLimiter(tpm, 60.0) if tpm else None
        self._expected_completion = float(expected_completion_tokens)
        self.cooldown = Cooldown(clock, sleep)
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

    async def before_send(self, tokens: float) -> None:
        """Wait for the token bucket, then the pacer, then the shared cooldown.

        The cooldown is checked last, right before the send, so no request leaves before a
        ``Retry-After`` expires however long the earlier waits took.
        """
        if self._tpm is not None:
            await self._tpm.acquire(tokens)
        if self._rps is not None:
            await self._rps.acquire(gate=self.cooldown.wait)
        else:
            await self.cooldown.wait()

    def settle(self, charged: float, reply: JudgeReply) -> float:
        """Correct the TPM charge with the reported usage; return tokens still owed (> 0)."""
        used = reply.prompt_tokens + reply.completion_tokens
        self._expected_completion += 0.05 * (reply.completion_tokens - self._expected_completion)
        if self._tpm is None or not used:
            return 0.0
        if used < charged:
            self._tpm.refund(charged - used)
            return 0.0
        return used - charged

    async def pay(self, owed: float) -> None:
        """Charge tokens a reply used beyond its reservation."""
        if self._tpm is not None and owed > 0:
            await self._tpm.acquire(min(owed, self.tpm or owed))

    def on_rate_limited(self, retry_after: float | None, stats: RunStats) -> None:
        """A 429: start the shared cooldown; slow down if 429s keep coming.

        429s that arrive while an earlier one's pause is still on are the same episode (those
        requests were sent before the pause began) and change nothing else. Each new episode
        widens the pacer's window by 1%; every third shrinks concurrency by a quarter, never
        below a quarter of the configured ceiling (with a pacer, concurrency is rarely the
        cause, and starving it would cost more throughput than the 429s did).
        """
        stats.rate_limited += 1
        same_episode = self.clock() < self.cooldown.until
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


def _backoff_delay(exc: BaseException | None, attempt: int, base: float, cap: float) -> float:
    """Exactly the server's ``Retry-After`` when given, else exponential with full jitter."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return float(retry_after)
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


class _Call:
    """One row's calls: each :meth:`attempt` is one send under the shared limits."""

    def __init__(self, provider: Provider, request: JudgeRequest, limits: Limits, stats: RunStats,
                 timeout: float) -> None:
        self.provider = provider
        self.request = request
        self.limits = limits
        self.stats = stats
        self.timeout = timeout
        self.attempts = 0
        self.decisions: dict[int, RetryDecision] = {}

    def decision(self, exc: BaseException) -> RetryDecision:
        return self.decisions.get(id(exc)) or self.provider.should_retry(exc)

    def retryable(self, exc: BaseException) -> bool:
        return self.decision(exc).kind in (RetryKind.TRANSIENT, RetryKind.RATE_LIMIT)

    async def attempt(self) -> CallOutcome:
        limits = self.limits
        self.attempts += 1
        if self.attempts > 1:
            self.stats.retries += 1
        charged = limits.charge(self.request)
        async with limits.capacity:
            await limits.before_send(charged)
            start = limits.clock()
            try:
                with anyio.fail_after(self.timeout):
                    reply = await self.provider.judge(self.request)
            except TimeoutError as exc:
                raise TransientError(f"timed out after {self.timeout:g}s") from exc
            except ProviderError as exc:
                decision = self.provider.should_retry(exc)
                self.decisions[id(exc)] = decision
                if decision.kind is RetryKind.RATE_LIMIT:
                    limits.on_rate_limited(decision.retry_after, self.stats)
                raise
            latency_ms = (limits.clock() - start) * 1000.0
        limits.on_success(self.stats)
        await limits.pay(limits.settle(charged, reply))
        return CallOutcome(reply, None, self.attempts, latency_ms)


async def call_with_retries(
    provider: Provider,
    request: JudgeRequest,
    limits: Limits,
    stats: RunStats,
    *,
    max_retries: int,
    timeout: float,
    backoff_base: float = 0.5,
    backoff_cap: float = 30.0,
) -> CallOutcome:
    """Judge one request under the shared limits, retrying as the provider's errors say.

    The first attempt runs bare (most rows need one, and building a tenacity loop per row
    costs more CPU than the HTTP call at 400 RPS); only a retryable failure hands the rest
    of the attempts to tenacity, whose waits continue the same backoff sequence.
    """
    call = _Call(provider, request, limits, stats, timeout)
    try:
        try:
            return await call.attempt()
        except Exception as exc:
            if max_retries == 0 or not call.retryable(exc):
                raise
            await limits.sleep(_backoff_delay(exc, 1, backoff_base, backoff_cap))

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return _backoff_delay(exc, state.attempt_number + 1, backoff_base, backoff_cap)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max_retries),
            wait=wait,
            retry=retry_if_exception(call.retryable),
            sleep=limits.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call.attempt()
    except AuthError as exc:
        return CallOutcome(None, _describe(exc), call.attempts, None, fatal=exc)
    except Exception as exc:  # noqa: BLE001 - a row's failure must never end the run
        fatal = exc if call.decision(exc).kind is RetryKind.FATAL else None
        return CallOutcome(None, _describe(exc), call.attempts, None, fatal=fatal)
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


def _describe(exc: BaseException) -> str:
    """``Kind: message`` for the ``error`` column (first line only)."""
    text = str(exc).strip().splitlines()
    status = getattr(exc, "status", None)
    prefix = type(exc).__name__ + (f"[{status}]" if status else "")
    return f"{prefix}: {text[0]}" if text else prefix
