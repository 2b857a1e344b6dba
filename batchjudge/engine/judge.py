"""The judge step: work in, finished rows out. Two interchangeable implementations share one
contract (:class:`JudgeStep`): :class:`OnlineJudge` here (one request per row, under the
shared limits) and :class:`~batchjudge.engine.batch.BatchJudge` (Mistral's batch API).

:meth:`OnlineJudge.judge` judges one row and is all a distributed engine's worker needs;
:meth:`OnlineJudge.run` is the single-process run's pool of workers over bounded streams. A
failure that must stop the whole run (a rejected key, an endpoint that never answered) is
raised as :class:`~batchjudge.engine.retry.StopRun`; every other failure is the row's own
result. :meth:`JudgeStep.stop` is how a run stops gracefully (SIGTERM): nothing new is sent,
the replies already on their way are waited for (up to a grace period) and written. With
a :class:`~batchjudge.engine.dedupe.Dedupe`, a row whose request is identical to one already
answered (or being answered) gets that answer without a call: its own result row, with
``attempts`` 0 and no tokens (nothing was sent or billed for it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchjudge.adapters.mistral import EMULATOR_HEADER
from batchjudge.core.results import FinishedRow, RowResult
from batchjudge.core.types import JudgeReply, Provider
from batchjudge.engine.budget import Budget, BudgetReachedError
from batchjudge.engine.dedupe import Dedupe, request_key
from batchjudge.engine.limits import SendingStopped, SendLimits
from batchjudge.engine.outcomes import answered_result, failed_result
from batchjudge.engine.reader import Work
from batchjudge.engine.request_errors import RequestErrorWatch
from batchjudge.engine.retry import CallOutcome, QuickRetries, RetryPolicy, StopRun, call_with_retries
from batchjudge.engine.stats import RunStats
from batchjudge.engine.streams import receive
from batchjudge.errors import RequestRejectedError

__all__ = ["JudgeStep", "OnlineJudge"]


class JudgeStep(Protocol):
    """What the run asks of a judge step."""

    def in_flight(self) -> Iterable[str]:
        """Row keys an earlier session already handed to this judge and that are still being
        judged (batch jobs): the reader must not send them again."""
        ...

    async def run(self, inbox: MemoryObjectReceiveStream[Work], outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        """Judge everything from ``inbox`` into ``outbox``; close ``outbox`` when done."""
        ...

    async def stop(self, grace: float) -> None:
        """Send nothing more; return once no request is on the wire, or after ``grace``
        seconds (the run then cancels what is left)."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the run ends, however it ends."""
        ...


class OnlineJudge:
    """One request per row (``samples`` per row with self-consistency) through ``provider``,
    retried by ``policy`` under the shared ``limits`` and within ``budget``; counts tokens and
    retries in ``stats``; identical requests sent once when given a ``dedupe``."""

    def __init__(
        self,
        provider: Provider,
        limits: SendLimits,
        policy: RetryPolicy,
        stats: RunStats,
        *,
        model: str,
        samples: int = 1,
        budget: Budget | None = None,
        dedupe: Dedupe | None = None,
    ) -> None:
        self.provider = provider
        self.limits = limits
        self.policy = policy
        self.stats = stats
        self.model = model
        self.samples = samples
        self.budget = budget if budget is not None else Budget()
        self.dedupe = dedupe
        self.quick = QuickRetries()
        """First retries that skip their backoff while the server answers nearly everything."""
        self.request_errors = RequestErrorWatch()
        """Stops the run when its first rows are all refused alike (an unknown model, say)."""

    def in_flight(self) -> Iterable[str]:
        return ()

    async def aclose(self) -> None:
        """Close the provider (one the caller passed in too: a run owns its provider)."""
        await self.provider.aclose()

    async def stop(self, grace: float) -> None:
        """Workers take no more rows and nothing is sent; wait for the replies on the wire."""
        self.limits.stop_sending()
        with anyio.move_on_after(grace):
            while self.limits.sending:
                await anyio.sleep(0.02)

    async def judge(self, work: Work) -> FinishedRow:
        """The row's result after its calls (or an identical request's answer); raises StopRun
        when the run must stop, :class:`~batchjudge.engine.limits.SendingStopped` when it is
        stopping, and BudgetReachedError (before any call) when the run's allowance has no
        room for it."""
        key = request_key(work.request) if self.dedupe is not None else None
        if key is None or self.dedupe is None:
            return self._finished(work, self._result(work, await self._call(work)))
        shared = await self.dedupe.claim(key)
        if shared is not None:
            self.stats.reused += 1
            return self._finished(work, self._reused(work, shared))
        answer: list[JudgeReply] | None = None
        try:
            outcomes = await self._call(work)
            if outcomes[-1].reply is not None:
                answer = [o.reply for o in outcomes if o.reply is not None]
            return self._finished(work, self._result(work, outcomes))
        finally:
            self.dedupe.settle(key, answer)

    async def _call(self, work: Work) -> list[CallOutcome]:
        """The row's calls within the budget: one per sample, stopping at the first without a
        reply."""
        budget = self.budget
        held_prompt = held_completion = 0.0
        if budget.limited:
            held_prompt = float(work.request.prompt_tokens * self.samples)
            held_completion = min(self.limits.expected_completion, work.request.max_tokens) * self.samples
            if not budget.admit(held_prompt, held_completion):
                raise budget.error()
        outcomes: list[CallOutcome] = []
        try:
            for sample in range(self.samples):
                request = work.request
                if sample:
                    request = dataclasses.replace(request, seed=(request.seed or 0) + sample)
                outcome = await call_with_retries(self.provider, request, self.limits, self.stats, self.policy,
                                                  self.quick)
                outcomes.append(outcome)
                if outcome.reply is None:
                    break
        finally:
            if budget.limited:
                replies = [o.reply for o in outcomes if o.reply is not None]
                budget.settle(held_prompt, held_completion, sum(r.prompt_tokens for r in replies),
                              sum(r.completion_tokens for r in replies))
        return outcomes

    @staticmethod
    def _finished(work: Work, result: RowResult) -> FinishedRow:
        return FinishedRow(result, work.row.premise, work.row.hypothesis, tuple(work.request.messages))

    def _reused(self, work: Work, replies: Sequence[JudgeReply]) -> RowResult:
        """The row's result from an identical request's replies: no call, no tokens."""
        free = [dataclasses.replace(r, prompt_tokens=0, completion_tokens=0) for r in replies]
        return answered_result(work.row.row_id, work.row.target, free, model=self.model, attempts=0,
                               truncated=work.truncated)

    def _result(self, work: Work, outcomes: list[CallOutcome]) -> RowResult:
        attempts = sum(o.attempts for o in outcomes)
        replies = [o.reply for o in outcomes if o.reply is not None]
        if replies and EMULATOR_HEADER in replies[-1].headers:
            self.stats.emulator = True
        prompt_tokens = sum(r.prompt_tokens for r in replies)
        completion_tokens = sum(r.completion_tokens for r in replies)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        row = work.row
        last = outcomes[-1]
        if last.reply is None:
            return failed_result(
                row.row_id, row.target, last.error or "no reply", model=self.model, attempts=attempts,
                truncated=work.truncated, prompt_tokens=prompt_tokens or None,
                completion_tokens=completion_tokens or None,
            )
        latencies = [o.latency_ms for o in outcomes if o.latency_ms is not None]
        return answered_result(
            row.row_id, row.target, replies, model=self.model, attempts=attempts,
            latency_ms=sum(latencies) / len(latencies) if latencies else None, truncated=work.truncated,
        )

    async def run(self, inbox: MemoryObjectReceiveStream[Work], outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        """As many workers as the concurrency ceiling, each judging from ``inbox`` in turn.

        Once the budget has no room for another row, each worker stops taking work as it
        finishes its row; then the run stops (StopRun), every answered row written. Every
        finished row passes :attr:`request_errors`, which holds the first failures back and
        stops the run (StopRun) when they show that the request itself is refused.
        """
        async with inbox, outbox:
            async with anyio.create_task_group() as workers:
                for _ in range(self.limits.max_concurrency):
                    workers.start_soon(self._worker, inbox.clone(), outbox.clone())
            for finished in self.request_errors.release():
                await outbox.send(finished)
        if self.budget.reached is not None:
            raise StopRun(self.budget.error())

    async def _worker(self, inbox: MemoryObjectReceiveStream[Work], outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        async with inbox, outbox:
            while True:
                try:
                    work = await receive(inbox)
                except anyio.EndOfStream:
                    return
                if self.limits.stopping:
                    return  # the row stays without a result: the next run sends it
                await self.request_errors.admit()
                self.stats.in_flight += 1
                try:
                    finished = await self.judge(work)
                except SendingStopped:
                    continue
                except BudgetReachedError:
                    return
                finally:
                    self.stats.in_flight -= 1
                    self.request_errors.left()
                try:
                    written = self.request_errors.finished(finished)
                except RequestRejectedError as exc:
                    raise StopRun(exc) from None
                try:
                    for row in written:
                        try:
                            outbox.send_nowait(row)  # no checkpoint: cannot be cancelled half-way
                        except anyio.WouldBlock:
                            with anyio.CancelScope(shield=True):  # a reply that arrived is never dropped...
                                await outbox.send(row)
                except anyio.BrokenResourceError:
                    return  # ...unless the sink itself has failed, which stops the run
