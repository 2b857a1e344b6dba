"""One retry policy for every call: the provider's :class:`RetryDecision` says whether and how
long, tenacity runs the loop.

For each failed attempt the provider classifies the exception once (``should_retry``): 429s
and transient failures are retried up to ``max_retries`` times, waiting exactly the server's
``Retry-After`` when the decision carries one and otherwise an exponential backoff with full
jitter; other errors fail the row at once; a fatal one (a rejected key) stops the run. The
wait comes from the decision alone, never from the exception's attributes, so a provider
controls it completely. Each attempt goes through the shared :class:`~.limits.Limits`; a 429
also starts the shared cooldown there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from batchjudge.core.types import JudgeReply, JudgeRequest, Provider, RetryDecision, RetryKind
from batchjudge.engine.limits import Limits
from batchjudge.engine.stats import RunStats
from batchjudge.errors import ProviderError, QuotaExhaustedError, TransientError

__all__ = ["CallOutcome", "RetryPolicy", "StopRun", "call_with_retries", "describe_error"]


class StopRun(Exception):
    """A call's failure that must stop the whole run (``cause`` says which)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait in between."""

    max_retries: int = 5
    timeout: float = 60.0
    """Seconds one attempt may take."""
    backoff_base: float = 0.5
    """The first retry waits up to this many seconds (full jitter), doubling each attempt..."""
    backoff_cap: float = 30.0
    """...up to this cap. A ``Retry-After`` in the decision overrides both."""

    def delay(self, decision: RetryDecision, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after ``decision``."""
        if decision.retry_after is not None:
            return float(decision.retry_after)
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


@dataclass(slots=True)
class CallOutcome:
    """How one row's calls ended: a reply, or the error of the last attempt."""

    reply: JudgeReply | None
    error: str | None
    attempts: int
    latency_ms: float | None


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
        self._decisions: dict[int, RetryDecision] = {}

    def decision(self, exc: BaseException) -> RetryDecision:
        """The provider's verdict on ``exc``, asked once per exception."""
        known = self._decisions.get(id(exc))
        if known is None:
            known = self._decisions[id(exc)] = self.provider.should_retry(exc)
        return known

    def retryable(self, exc: BaseException) -> bool:
        return self.decision(exc).kind in (RetryKind.TRANSIENT, RetryKind.RATE_LIMIT)

    async def attempt(self) -> CallOutcome:
        limits = self.limits
        self.attempts += 1
        if self.attempts > 1:
            self.stats.retries += 1
        reservation = limits.charge(self.request)
        async with limits.capacity:
            await limits.before_send(reservation)
            start = limits.clock()
            try:
                with anyio.fail_after(self.timeout):
                    reply = await self.provider.judge(self.request)
            except TimeoutError as exc:
                raise TransientError(f"timed out after {self.timeout:g}s") from exc
            except ProviderError as exc:
                decision = self.decision(exc)
                if decision.kind is RetryKind.RATE_LIMIT:
                    limits.on_rate_limited(decision.retry_after, reservation, exc.headers)
                raise
            else:
                latency_ms = (limits.clock() - start) * 1000.0
                limits.on_success()
                limits.settle(reservation, reply)
            finally:
                limits.after_send(reservation)
        return CallOutcome(reply, None, self.attempts, latency_ms)


async def call_with_retries(
    provider: Provider, request: JudgeRequest, limits: Limits, stats: RunStats, policy: RetryPolicy
) -> CallOutcome:
    """Judge one request under the shared limits, retrying as the provider's decisions say.

    Returns the reply, or the last error (the row fails); raises :class:`StopRun` when a
    decision is fatal. The first attempt runs bare (most rows need one, and building a
    tenacity loop per row costs more CPU than the HTTP call at 400 RPS); only a retryable
    failure hands the rest of the attempts to tenacity, whose waits continue the same
    sequence.
    """
    call = _Call(provider, request, limits, stats, policy.timeout)
    try:
        try:
            return await call.attempt()
        except Exception as exc:
            if policy.max_retries == 0 or not call.retryable(exc):
                raise
            await limits.sleep(policy.delay(call.decision(exc), 1))

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            decision = call.decision(exc) if exc is not None else RetryDecision(RetryKind.TRANSIENT)
            return policy.delay(decision, state.attempt_number + 1)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_retries),
            wait=wait,
            retry=retry_if_exception(call.retryable),
            sleep=limits.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call.attempt()
    except Exception as exc:  # noqa: BLE001 - a row's failure must never end the run...
        if isinstance(exc, QuotaExhaustedError) or call.decision(exc).kind is RetryKind.FATAL:
            raise StopRun(exc) from exc  # ...unless nothing more can succeed
        return CallOutcome(None, describe_error(exc), call.attempts, None)
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


def describe_error(exc: BaseException) -> str:
    """``Kind[status]: message`` for the ``error`` column (first line only)."""
    text = str(exc).strip().splitlines()
    status = getattr(exc, "status", None)
    prefix = type(exc).__name__ + (f"[{status}]" if status else "")
    return f"{prefix}: {text[0]}" if text else prefix
