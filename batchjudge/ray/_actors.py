"""The Ray side of the shared limiter and the judging worker.

:class:`LimiterActor` is an async actor around one :class:`~._limiter.SharedLimiter` (no CPU
reserved: it only books times and counts). Workers reach it through :class:`ActorClient`; the
handle is passed to them as a constructor argument (``ray.get_actor`` from inside Ray Data
workers is not reliable). :class:`RayJudgeWorker` is the callable class ``map_batches`` builds
once per actor: a :class:`~._worker.JudgeWorker` whose limits start talking to their limiters
on the actor's event loop with its first block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pyarrow as pa
import ray
from ray.actor import ActorHandle

from batchjudge.engine.config import RunConfig
from batchjudge.engine.stats import StatsSnapshot
from batchjudge.ray._limiter import Broadcast, Lease, Report, SharedLimiter
from batchjudge.ray._worker import JudgeWorker

__all__ = ["ActorClient", "Limiter", "LimiterActor", "RayJudgeWorker", "start_limiter"]


class LimiterActor:
    """One endpoint's :class:`~._limiter.SharedLimiter`, as a Ray actor."""

    def __init__(self, **options: Any) -> None:
        self._limiter = SharedLimiter(**options)

    async def lease(self, slots: int, tokens: float, returned: Sequence[float]) -> Lease:
        return await self._limiter.lease(slots, tokens, returned)

    async def report(self, report: Report) -> Broadcast:
        return await self._limiter.report(report)

    async def watch(self, epoch: int) -> Broadcast:
        return await self._limiter.watch(epoch)

    async def status(self) -> tuple[StatsSnapshot, BaseException | None]:
        """The limiter's counters (429s over every worker, the concurrency and the pace in
        force), and why the whole run must stop, if it must."""
        return self._limiter.stats.snapshot(), self._limiter.stopped_by

    async def stop_sending(self) -> None:
        """Every worker sends nothing more."""
        self._limiter.stop_sending()


Limiter = ActorHandle[LimiterActor]
"""A handle on a limiter actor."""
_RemoteLimiter = ray.remote(LimiterActor)


def start_limiter(config: RunConfig) -> Limiter:
    """A limiter actor for one endpoint of ``config``: its ``--concurrency``, ``--rps``,
    ``--rpm`` and ``--tpm`` (or the limits it learns) shared by every worker. It reserves no CPU
    and serves every call concurrently. Without limits, the first request goes alone for up to
    its ``--timeout`` (and then some)."""
    handle = _RemoteLimiter.options(num_cpus=0, max_concurrency=10_000).remote(
        concurrency=config.max_in_flight, rps=config.rps, rpm=config.rpm, tpm=config.tpm,
        expected_completion_tokens=config.expected_completion_tokens, probe_timeout=config.timeout + 10.0,
        min_rps=config.min_rps,
    )
    return cast(Limiter, handle)  # ray types .remote() on options() loosely


class ActorClient:
    """A :class:`~._limiter.LimiterClient` over a limiter actor's handle."""

    def __init__(self, handle: Limiter) -> None:
        self._handle = handle

    async def lease(self, slots: int, tokens: float, returned: Sequence[float]) -> Lease:
        lease: Lease = await self._handle.lease.remote(slots, tokens, list(returned))
        return lease

    async def report(self, report: Report) -> Broadcast:
        state: Broadcast = await self._handle.report.remote(report)
        return state

    async def watch(self, epoch: int) -> Broadcast:
        state: Broadcast = await self._handle.watch.remote(epoch)
        return state


class RayJudgeWorker:
    """The ``map_batches`` callable class: one :class:`~._worker.JudgeWorker` per actor."""

    def __init__(self, config: RunConfig, limiters: Sequence[Limiter], *, workers: int, keyed: bool,
                 keep_inputs: bool = False, boards: Sequence[str] = ()) -> None:
        self._worker = JudgeWorker(config, [ActorClient(h) for h in limiters], workers=workers, keyed=keyed,
                                   keep_inputs=keep_inputs, boards=boards)
        self._limits: asyncio.Task[None] | None = None

    async def __call__(self, batch: pa.Table) -> pa.Table:
        if self._limits is None:  # the actor's event loop runs from the first call on
            self._limits = asyncio.get_running_loop().create_task(self._worker.run_limits())
        return await self._worker(batch)
