"""The judging worker: what each Ray actor runs on its blocks, built from the engine's steps.

A worker holds the reader's :class:`~batchjudge.engine.reader.Preparer` (the run's prompt
adapter and request settings, from :func:`~batchjudge.engine.pipeline.request_setup`) and one
:class:`~batchjudge.engine.judge.OnlineJudge` per endpoint (from
:func:`~batchjudge.engine.pipeline.online_judge`: retries, samples, identical requests sent
once within the worker), each sending through :class:`~._leased.LeasedLimits` lent by that
endpoint's shared limiter. For a block it prepares every row, judges the rows in one task
group (the endpoint's capacity bounds what is in flight) and returns one result per row, in
order. Each row goes to the endpoint with the least work in flight for its current
concurrency, chosen when one has room, so a slow or rate-limited server gets fewer rows. Once
the run is stopping (a SIGTERM at the driver), rows not sent yet get no result: the block
comes back with the rows that have one.

Nothing here imports Ray; :mod:`._actors` makes it a Ray Data callable class.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import pyarrow as pa

from batchjudge.core.results import RowResult
from batchjudge.engine.collector import collector_tuned
from batchjudge.engine.config import RunConfig
from batchjudge.engine.judge import OnlineJudge
from batchjudge.engine.limits import Clock, SendingStopped, Sleep
from batchjudge.engine.pipeline import online_judge, provider_for, request_setup
from batchjudge.engine.reader import Preparer, Work
from batchjudge.engine.retry import StopRun, first_error
from batchjudge.engine.source import SourceRow, parse_columns, source_rows
from batchjudge.engine.stats import RunStats
from batchjudge.ray._board import CooldownBoard
from batchjudge.ray._columns import results_table, rows_of
from batchjudge.ray._leased import LeasedLimits
from batchjudge.ray._limiter import LimiterClient

__all__ = ["JudgeWorker", "STREAM"]

STREAM = "dataset"
"""The name rows of a user's dataset carry in their problems (they have no file)."""


@dataclass(slots=True)
class _Route:
    """One endpoint as this worker sees it."""

    judge: OnlineJudge
    limits: LeasedLimits
    in_flight: int = 0

    def load(self) -> float:
        """Work in flight for the concurrency the endpoint allows now (1.0: full)."""
        return self.in_flight / self.limits.capacity.total_tokens


class JudgeWorker:
    """Judges blocks of rows; see the module docstring.

    ``clients`` reach each endpoint's limiter (in ``config.base_urls`` order); ``workers`` is
    how many workers share the run's ``--concurrency``. ``keyed`` blocks hold the source's
    rows (:data:`~._columns.ROW_SCHEMA`); otherwise they are a user's dataset, read through
    ``config.columns``. ``keep_inputs`` keeps the premise and hypothesis beside keyed results.
    ``boards`` name each endpoint's :class:`~._board.CooldownBoard` (none: a pause reaches
    the other workers through the limiter alone).
    """

    def __init__(
        self,
        config: RunConfig,
        clients: Sequence[LimiterClient],
        *,
        workers: int,
        keyed: bool,
        keep_inputs: bool = False,
        boards: Sequence[str] = (),
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        adapter, settings = request_setup(config)
        self.preparer = Preparer(adapter, settings)
        self.columns = parse_columns(config.columns)
        self.keyed = keyed
        self.keep_inputs = keep_inputs
        self.stats = RunStats()
        share = max(1, math.ceil(config.max_in_flight / workers))
        self.routes: list[_Route] = []
        self._boards = [CooldownBoard.open(name) for name in boards] or [None] * len(clients)
        for url, client, board in zip(config.base_urls, clients, self._boards, strict=True):
            limits = LeasedLimits(client, concurrency=share, expected_completion_tokens=config.expected_completion_tokens,
                                  clock=clock, sleep=sleep, stats=self.stats, board=board)
            provider = provider_for(config, settings.model, base_url=url, concurrency=share)
            judge = online_judge(config, provider, limits, self.stats, model=settings.model)
            self.routes.append(_Route(judge, limits))
        self._freed = anyio.Event()

    async def run_limits(self) -> None:
        """Keep every endpoint's leased limits talking to their limiters (until cancelled)."""
        async with anyio.create_task_group() as group:
            for route in self.routes:
                group.start_soon(route.limits.run)

    async def __call__(self, batch: pa.Table) -> pa.Table:
        """One block in, its rows' results out (with the user's columns, unless keyed)."""
        rows = rows_of(batch) if self.keyed else self._user_rows(batch)
        found = await self.judge_rows(rows)
        have = [i for i, result in enumerate(found) if result is not None]
        results = results_table([result for result in found if result is not None], scrubbed=not self.keyed)
        if len(have) < batch.num_rows:  # the run is stopping: rows never sent are left out
            batch = batch.take(have)
        if self.keyed:
            if self.keep_inputs:
                results = results.append_column("premise", batch.column("premise"))
                results = results.append_column("hypothesis", batch.column("hypothesis"))
            return results
        kept = [name for name in batch.column_names if name not in results.column_names]
        return pa.Table.from_arrays(
            [*(batch.column(n) for n in kept), *results.columns], names=[*kept, *results.column_names]
        )

    def _user_rows(self, batch: pa.Table) -> list[SourceRow]:
        roles = [role for role, name in self.columns.items() if name in batch.column_names]
        table = batch.select([self.columns[role] for role in roles]).rename_columns(roles)
        return source_rows(table, self.columns, STREAM, None)

    async def judge_rows(self, rows: Sequence[SourceRow]) -> list[RowResult | None]:
        """Each row's result, in order; raises StopRun when the run must stop. Every row has
        one unless the run is stopping (those never sent then have None). The collector is
        tuned while the block works, as in a single-process run (:mod:`~batchjudge.engine.collector`)."""
        with collector_tuned():
            return await self._judge_block(rows)

    async def _judge_block(self, rows: Sequence[SourceRow]) -> list[RowResult | None]:
        out: list[RowResult | None] = [None] * len(rows)
        # Rendering and counting tokens is CPU work: in a thread, as the single process's
        # reader does, so that it never holds up the sends booked on this event loop.
        items = await anyio.to_thread.run_sync(lambda: [self.preparer.prepare(row) for row in rows])
        try:
            async with anyio.create_task_group() as group:
                for i, item in enumerate(items):
                    if isinstance(item, Work):
                        group.start_soon(self._judge, item, out, i)
                    else:
                        out[i] = item.result
        except* StopRun as stopped:
            stop = first_error(stopped)
            with anyio.CancelScope(shield=True):
                for route in self.routes:
                    await route.limits.stop(stop.cause)
            raise stop from None
        return out

    async def _judge(self, work: Work, out: list[RowResult | None], i: int) -> None:
        while (route := min(self.routes, key=_Route.load)).load() >= 1.0:
            await self._freed.wait()  # every endpoint is full: wait until one has room
        route.in_flight += 1
        try:
            out[i] = (await route.judge.judge(work)).result
        except SendingStopped:
            pass  # the run is stopping: the row stays without a result, for the next run
        finally:
            route.in_flight -= 1
            self._freed.set()
            self._freed = anyio.Event()

    async def aclose(self) -> None:
        """Give back what the limiters lent and close the providers."""
        for route in self.routes:
            await route.limits.aclose()
            await route.judge.aclose()
        for board in self._boards:
            if board is not None:
                board.close()
