"""One retry policy for every call: the provider's :class:`RetryDecision` says whether and how
long, tenacity runs the loop.

For each failed attempt the provider classifies the exception once (``should_retry``): 429s
and transient failures are retried up to ``max_retries`` times, waiting exactly the server's
``Retry-After`` when the decision carries one and otherwise an exponential backoff with full
jitter (skipped for a lone transient failure's first retry while :class:`QuickRetries` allows
it); other errors fail the row at once; a fatal one (a rejected key) stops the run. The
wait comes from the decision alone, never from the exception's attributes, so a provider
controls it completely. Each attempt goes through the shared :class:`~.limits.SendLimits`; a 429
also starts the shared cooldown there.

An outage is not the row's failure. When the endpoint answers nothing useful
(:func:`fails_endpoint`: no connection, no reply within ``timeout``, a 5xx, a reply that is not
HTTP or not the API's, a connection lost before any reply) and the shared
:class:`~.breaker.Breaker` takes it for an outage (before any success, or a streak of them:
its rule), or the server asks for a wait longer than ``max_retry_after``, the attempt opens the
breaker and waits at its gate to send again: the row keeps its retries and is never marked
failed for it. Before any request of the run has succeeded, an outage that lasts the breaker's
``abort_after`` stops the run (:class:`StopRun` with an
:class:`~batchjudge.errors.UnreachableError` saying what the endpoint did).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from batchjudge.core.sending import on_request_written
from batchjudge.core.types import JudgeReply, JudgeRequest, Provider, RetryDecision, RetryKind
from batchjudge.engine.limits import Reservation, SendingStopped, SendLimits
from batchjudge.engine.stats import RunStats
from batchjudge.engine.streams import acquire
from batchjudge.errors import (
    DisconnectedError,
    LimitTooLowError,
    ProviderError,
    QuotaExhaustedError,
    TransientError,
    UnreachableError,
    first_line,
)

__all__ = [
    "CallOutcome", "QuickRetries", "RetryPolicy", "StopRun", "call_with_retries", "describe_error", "fails_endpoint",
    "first_error",
]


class StopRun(Exception):
    """A call's failure that must stop the whole run (``cause`` says which)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause

    def __reduce__(self) -> tuple[type[StopRun], tuple[BaseException]]:
        """Pickled with its cause (a worker process raises it, the driver reads the cause)."""
        return StopRun, (self.cause,)


_E = TypeVar("_E", bound=BaseException)


def first_error(group: BaseExceptionGroup[_E]) -> _E:
    """The first error of a (possibly nested) exception group from a task group (a
    :class:`StopRun` caught with ``except*``, say)."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait in between."""

    max_retries: int = 5
    timeout: float = 60.0
    """Seconds one attempt may take."""
    backoff_base: float = 0.5
    """The first retry waits up to this many seconds (full jitter), doubling each attempt..."""
    backoff_cap: float = 30.0
    """...up to this cap. A ``Retry-After`` in the decision overrides both..."""
    max_retry_after: float = 120.0
    """...up to this many seconds: a longer wait is treated as an outage (the breaker)."""

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

    def __init__(self, provider: Provider, request: JudgeRequest, limits: SendLimits, stats: RunStats,
                 policy: RetryPolicy, quick: QuickRetries | None) -> None:
        self.provider = provider
        self.request = request
        self.limits = limits
        self.stats = stats
        self.timeout = policy.timeout
        self.max_retry_after = policy.max_retry_after
        self.quick = quick
        """The run's allowance of first retries without a backoff (refilled here by good replies)."""
        self.attempts = 0
        self._decisions: dict[int, RetryDecision] = {}
        self._lost_before = False
        """Whether an earlier attempt of this row lost its connection before any reply."""

    def decision(self, exc: BaseException) -> RetryDecision:
        """The provider's verdict on ``exc``, asked once per exception."""
        known = self._decisions.get(id(exc))
        if known is None:
            known = self._decisions[id(exc)] = self.provider.should_retry(exc)
        return known

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, (StopRun, SendingStopped)):
            return False
        return self.decision(exc).kind in (RetryKind.TRANSIENT, RetryKind.RATE_LIMIT)

    def _outage(self, exc: BaseException, decision: RetryDecision, sent_at: float) -> str | None:
        """Why ``exc`` is an outage rather than the row's failure, or None when it is not.

        No connection at all is one. Another failure of the endpoint is one when the breaker
        says so (before any success, or a streak), and a lost connection also when this row's
        previous attempt lost its connection too.
        """
        if decision.kind is RetryKind.OUTAGE:
            return first_line(exc)
        if fails_endpoint(exc):
            lost = isinstance(exc, DisconnectedError)
            outage = self.limits.breaker.record_failure(sent_at, disconnected=lost) or (lost and self._lost_before)
            self._lost_before = self._lost_before or lost
            if outage:
                return self._what_the_endpoint_did(exc)
        wait = decision.retry_after
        if wait is not None and wait > self.max_retry_after:
            return (f"the server asked to wait {wait:,.0f} s (Retry-After), more than "
                    f"--max-retry-after {self.max_retry_after:g} s")
        return None

    def _what_the_endpoint_did(self, exc: BaseException) -> str:
        """The outage's reason as the user reads it: the endpoint and what it did."""
        where = getattr(self.provider, "base_url", None) or "the endpoint"
        if isinstance(exc, TransientError) and exc.timed_out:
            return f"{where} sent no reply within {self.timeout:g} s (every request timed out)"
        status = getattr(exc, "status", None)
        if status is not None:
            return f"{where} answered HTTP {status} ({first_line(exc)})"
        if isinstance(exc, DisconnectedError):
            return first_line(exc)
        return f"{where} did not speak HTTP as the API does ({first_line(exc)})"

    async def attempt(self) -> CallOutcome:
        """One attempt of the row: sent once the limits allow, and again (without counting as
        a retry) each time it meets an outage."""
        limits = self.limits
        self.attempts += 1
        if self.attempts > 1:
            self.stats.retries += 1
        while True:
            reservation = limits.charge(self.request)
            reservation.retry = self.attempts > 1
            await limits.before_send(reservation)
            start = limits.clock()
            limits.sending += 1
            written = on_request_written.set(functools.partial(limits.written, reservation))
            try:
                with anyio.fail_after(self.timeout):
                    reply = await self.provider.judge(self.request)
            except Exception as exc:
                failure = _timed_out(self.timeout) if isinstance(exc, TimeoutError) else exc
                if self._settle_failure(failure, reservation):
                    continue  # an outage: wait at the breaker's gate, then send again
                if failure is exc:
                    raise
                raise failure from exc
            except BaseException:
                limits.breaker.release(reservation.ticket)
                raise
            else:
                latency_ms = (limits.clock() - start) * 1000.0
                limits.answered()
                limits.breaker.record_success(reservation.ticket, reservation.sent_at)
                if self.stats.outage is not None:
                    self._show_outage()
                limits.on_success()
                limits.settle(reservation, reply)
                if self.quick is not None:
                    self.quick.replied()
            finally:
                on_request_written.reset(written)
                limits.sending -= 1
                limits.after_send(reservation)
            return CallOutcome(reply, None, self.attempts, latency_ms)

    def _settle_failure(self, exc: Exception, reservation: Reservation) -> bool:
        """Tell the breaker and the limits how an attempt failed; True when it was an outage
        (the caller sends again); raises StopRun when the outage must stop the run."""
        breaker = self.limits.breaker
        ticket = reservation.ticket
        decision = self.decision(exc)
        reason = self._outage(exc, decision, reservation.sent_at)
        if reason is not None:
            stop = breaker.record_outage(ticket, reason, reservation.sent_at)
            self._show_outage()
            if stop:
                raise StopRun(UnreachableError(
                    f"{reason}; no request of this run has succeeded in {breaker.abort_after:g} s: "
                    "check --base-url and the network, then run the same command again",
                    url=getattr(exc, "url", "") or getattr(self.provider, "base_url", "") or "",
                )) from exc
            return True
        if isinstance(exc, ProviderError) and exc.status is not None:
            self.limits.answered()  # a reply came, whatever it said (the stall watch)
        if isinstance(exc, ProviderError) and exc.status is not None and not fails_endpoint(exc):
            breaker.record_answer(ticket, reservation.sent_at)
            self._show_outage()
        else:
            breaker.record_neutral(ticket)
        if decision.kind is RetryKind.RATE_LIMIT and isinstance(exc, ProviderError):
            self.limits.on_rate_limited(decision.retry_after, reservation, exc.headers)
        return False

    def _show_outage(self) -> None:
        breaker = self.limits.breaker
        self.stats.outage = breaker.reason if breaker.is_open else None
        self.stats.outages = breaker.episodes


async def call_with_retries(
    provider: Provider, request: JudgeRequest, limits: SendLimits, stats: RunStats, policy: RetryPolicy,
    quick: QuickRetries | None = None,
) -> CallOutcome:
    """Judge one request under the shared limits, retrying as the provider's decisions say.

    Returns the reply, or the last error (the row fails); raises :class:`StopRun` when a
    decision is fatal or an outage must stop the run, and :class:`~.limits.SendingStopped`
    when the run is stopping (the row then has no result). The first attempt runs bare (most
    rows need one, and building a tenacity loop per row costs more CPU than the HTTP call at
    400 RPS); only a retryable failure hands the rest of the attempts to tenacity, whose
    waits continue the same sequence. With ``quick`` (the run's :class:`QuickRetries`), the
    first retry of a lone transient failure skips its backoff wait.

    The row holds its capacity slot from its first attempt to its last, waits included: a retry
    queued again behind every row waiting for a slot waited seconds for nothing (the slots are
    sized for the pace, so that line is long), and at a run's end that wait was the run's.
    """
    await acquire(limits.capacity)
    try:
        return await _calls(_Call(provider, request, limits, stats, policy, quick), policy, quick)
    finally:
        limits.capacity.release()


async def _calls(call: _Call, policy: RetryPolicy, quick: QuickRetries | None) -> CallOutcome:
    """The attempts of one row, in the capacity slot it holds (:func:`call_with_retries`)."""
    limits = call.limits
    try:
        try:
            return await call.attempt()
        except (StopRun, SendingStopped):
            raise
        except Exception as exc:
            if policy.max_retries == 0 or not call.retryable(exc):
                raise
            decision = call.decision(exc)
            await limits.sleep(0.0 if quick is not None and quick.take(decision) else policy.delay(decision, 1))

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
    except (StopRun, SendingStopped):
        raise
    except Exception as exc:  # noqa: BLE001 - a row's failure must never end the run...
        if isinstance(exc, (QuotaExhaustedError, LimitTooLowError)) or call.decision(exc).kind is RetryKind.FATAL:
            raise StopRun(exc) from exc  # ...unless nothing more can succeed
        return CallOutcome(None, describe_error(exc), call.attempts, None)
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


class QuickRetries:
    """The run's allowance of first retries that skip the backoff wait.

    Full-jitter backoff spreads retries when a server is in trouble. Against one that answers
    nearly everything it only holds a lone server error's retry back, by up to
    ``backoff_base`` (0.5 s), and at the end of a run that wait is when the run ends: at a known
    400 RPS with 2% 500s, retrying at once raised the window used from 92.1% to 93.4% (medians
    of four interleaved pairs, every pair the same way; ``benchmarks/README.md``). As in gRPC's
    retry throttling, every good reply adds ``refill`` to an allowance capped at ``cap`` and each
    quick retry spends one: quick retries last while fewer than about one reply in ten fails;
    a server failing more often empties it, and every retry backs off again. Only the first
    retry of a transient failure without a ``Retry-After`` is ever quick, and it still waits its
    turn at the rate limits.
    """

    def __init__(self, cap: float = 10.0, refill: float = 0.1) -> None:
        self.cap = cap
        self.refill = refill
        self.allowance = cap

    def replied(self) -> None:
        """A call succeeded: the allowance grows by ``refill``."""
        self.allowance = min(self.cap, self.allowance + self.refill)

    def take(self, decision: RetryDecision) -> bool:
        """Whether the first retry after ``decision`` goes without a backoff wait (spends one)."""
        if decision.kind is not RetryKind.TRANSIENT or decision.retry_after is not None or self.allowance < 1.0:
            return False
        self.allowance -= 1.0
        return True


def fails_endpoint(exc: BaseException) -> bool:
    """Whether ``exc`` says the endpoint answered nothing useful: no connection, no reply in
    time, a 5xx, a reply that is not HTTP or not the API's, a connection lost before any reply.
    A 429, another 4xx (408 included: the server is there) or a reply over the size cap is an
    answer; an error that is not a provider's says nothing about the endpoint."""
    return isinstance(exc, TransientError) and (exc.status is None or exc.status >= 500)


def _timed_out(seconds: float) -> TransientError:
    """The failure of an attempt the engine's own timeout cut short."""
    return TransientError(f"no reply within {seconds:g} s (timeout)", timed_out=True)


def describe_error(exc: BaseException) -> str:
    """``Kind[status]: message`` for the ``error`` column (first line only)."""
    text = str(exc).strip().splitlines()
    status = getattr(exc, "status", None)
    prefix = type(exc).__name__ + (f"[{status}]" if status else "")
    return f"{prefix}: {text[0]}" if text else prefix
