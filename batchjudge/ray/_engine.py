"""``--engine ray``: a run judged by a pool of Ray actors, written by this process alone.

The driver (this process) keeps everything that makes a run exactly-once: it locks the run
directory, loads the done-set, and owns the engine's :class:`~batchjudge.engine.sink.ResultSink`,
which writes every results part atomically and ``run.json`` after it. Ray does the rest: read
tasks stream the input files and skip done rows (:class:`~._read.PendingRows`), a pool of
:class:`~._actors.RayJudgeWorker` actors judges the blocks under one limiter per endpoint, and
the results stream back here through ``iter_batches``.

Why this is exactly-once when a worker dies mid-block: a worker writes nothing; a row has a
result only once this driver has written it in a part. Ray re-runs the lost block on a new
actor (its rows are sent again: calls are at-least-once), and any row whose key this driver
already holds (from an earlier part, or this session) is dropped here, so Ray's retries can
never write a second result. When the driver dies, the unflushed buffer is lost and those rows
have no result; the same command reads them again. Ray Data's own checkpointing is not used:
it filters ids already written on a rerun too, but the project's parts and done-set already
do that, in the same run directory as the single-process engine, with the same ``report``.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import anyio
import numpy as np
import pyarrow as pa
import ray
import ray.data
from anyio.streams.memory import MemoryObjectSendStream
from ray.data import ActorPoolStrategy, Dataset

from batchjudge.core.results import STATUS_FAILED, FinishedRow
from batchjudge.core.scrub import scrub_text
from batchjudge.engine.checkpoint import key_hashes_in_order
from batchjudge.engine.config import RunConfig
from batchjudge.engine.reader import Reader
from batchjudge.engine.retry import StopRun
from batchjudge.engine.stats import RunStats, StatsSnapshot
from batchjudge.errors import EngineError
from batchjudge.ray._actors import Limiter, RayJudgeWorker, start_limiter
from batchjudge.ray._board import CooldownBoard, board_path
from batchjudge.ray._reaper import Reaper
from batchjudge.ray._columns import results_of
from batchjudge.ray._read import PendingRows

__all__ = ["BLOCK_ROWS", "RayEngine", "SeenKeys", "block_rows", "board_names", "cluster_cpus", "judged"]

BLOCK_ROWS = 256
"""Rows per block at most, and per batch a worker judges at once."""


def block_rows(config: RunConfig, workers: int) -> int:
    """Rows per block: :data:`BLOCK_ROWS` for the CPU-bound local judge (fewer, larger tasks);
    against an API, twice a worker's share of ``--concurrency`` (at least 16), so the last
    blocks spread over every worker instead of draining through one."""
    if config.provider == "local":
        return BLOCK_ROWS
    return max(16, min(BLOCK_ROWS, 2 * math.ceil(config.max_in_flight / workers)))


_POLL_S = 0.5
"""How often the driver reads the limiters' counters (429s) for the progress view."""


_BOARDS: set[str] = set()
"""Boards this driver named, deleted from its machine when it exits."""

_reaper: Reaper | None = None
"""The watcher of the run under way (:mod:`._reaper`): if the driver dies, it kills the Ray
the driver started here and removes the boards."""


def board_names(config: RunConfig) -> list[str]:
    """The :class:`~._board.CooldownBoard` of each endpoint, for this driver's Ray job: the
    workers of one machine share a pause on it. Named by the job and the endpoint's URL, so a
    pipeline that judges many datasets against one server uses one board a machine; this
    machine's is deleted when the driver exits (other machines' stay, 16 bytes each)."""
    job = ray.get_runtime_context().get_job_id()
    names = [hashlib.sha256(f"{job}\0{url}".encode()).hexdigest()[:24] for url in config.base_urls]
    for name in set(names) - _BOARDS:
        _BOARDS.add(name)
        atexit.register(CooldownBoard.remove, name)
    if _reaper is not None:
        for name in set(names):
            _reaper.board(board_path(name))
    return names


def judged(ds: Dataset, config: RunConfig, limiters: list[Limiter], *, workers: int, keyed: bool,
           keep_inputs: bool = False) -> Dataset:
    """``ds`` through a pool of ``workers`` judging actors sharing ``limiters`` (one per endpoint)
    and, on each machine, the endpoints' :func:`board_names`.

    Blocks are first cut to :func:`block_rows` rows (a streaming repartition, no shuffle): Ray
    merges small files into one block, and one block goes to one actor.
    """
    rows = block_rows(config, workers)
    return ds.repartition(target_num_rows_per_block=rows).map_batches(
        RayJudgeWorker,
        fn_constructor_kwargs={"config": config, "limiters": limiters, "workers": workers, "keyed": keyed,
                               "keep_inputs": keep_inputs, "boards": board_names(config)},
        compute=ActorPoolStrategy(size=workers),
        batch_size=rows,
        batch_format="pyarrow",
        num_cpus=1,
    )


def cluster_cpus() -> int:
    """The CPUs of the Ray cluster this process is connected to (at least one)."""
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return max(1, int(resources.get("CPU", 1)))


class SeenKeys:
    """The 64-bit key hashes of rows already sent to the sink: 8 bytes a row once merged."""

    def __init__(self, done: np.ndarray) -> None:
        self._sorted = done
        self._recent: set[int] = set()

    def add(self, row_ids: list[str]) -> list[bool]:
        """For each key, whether it is new (and now seen)."""
        hashes = key_hashes_in_order(row_ids)
        where = np.searchsorted(self._sorted, hashes)
        known = where < self._sorted.size
        known[known] = self._sorted[where[known]] == hashes[known]
        fresh: list[bool] = []
        for h, old in zip(hashes.tolist(), known.tolist(), strict=True):
            new = not old and h not in self._recent
            if new:
                self._recent.add(h)
            fresh.append(new)
        if len(self._recent) > max(1 << 16, self._sorted.size // 4):
            self._sorted = np.union1d(self._sorted, np.fromiter(self._recent, dtype=np.uint64))
            self._recent.clear()
        return fresh


class RayEngine:
    """Judges a run's pending rows on Ray (an :class:`~batchjudge.engine.pipeline.Engine`).

    ``config.address`` names the cluster to join (None starts Ray on this machine);
    ``config.workers`` the judging actors. ``keep_inputs`` brings each row's premise and
    hypothesis back with its result (for a tracer). ``quiet`` keeps Ray's own logs and
    progress bars off the terminal.
    """

    def __init__(self, config: RunConfig, *, keep_inputs: bool = False, quiet: bool = True) -> None:
        self.config = config
        self.keep_inputs = keep_inputs
        self.quiet = quiet
        self._started = False
        self._reaper: Reaper | None = None
        self._limiters: list[Limiter] = []
        self._drained = anyio.Event()

    def _connect(self) -> int:
        """Join or start Ray; return how many judging actors to run."""
        config = self.config
        if self.quiet:
            for name in ("ray", "ray.data"):
                logging.getLogger(name).setLevel(logging.ERROR)
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.print_on_execution_start = False
            context.enable_auto_log_stats = False
        global _reaper
        if _reaper is None:
            _reaper = self._reaper = Reaper()  # before Ray starts: it notes what Ray starts
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": not self.quiet,
                                       "logging_level": logging.WARNING if self.quiet else logging.INFO}
            if config.address is None:
                # A new Ray on this machine, never one that happens to run here already.
                # Judging is I/O-bound against an API and the read tasks are light: give Ray
                # more slots than cores (2 cores with num_cpus=2 starved its scheduling).
                options["address"] = "local"
                options["num_cpus"] = max(4, (config.workers or os.cpu_count() or 2) + 2)
            else:
                options["address"] = config.address
            ray.init(**options)
            self._started = True
        if config.workers is not None:
            return config.workers
        if config.address is None:
            return os.cpu_count() or 2
        return cluster_cpus() - 1 or 1

    async def feed(self, reader: Reader, stats: RunStats, outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        """Judge ``reader``'s pending rows on Ray and send each result to ``outbox`` once."""
        async with outbox:
            try:
                workers = self._connect()  # on this (main) thread: Ray sets its signal handlers here
            except Exception as exc:  # noqa: BLE001 - Ray's many start-up failures, said in one line
                self._release_reaper()
                raise StopRun(EngineError(f"cannot start Ray{_where(self.config)}: {_line(exc)}")) from exc
            self._limiters = [start_limiter(self.config) for _ in self.config.base_urls]
            try:
                source = PendingRows(reader.source, reader.done, reader.limit, block_rows(self.config, workers))
                out = judged(ray.data.read_datasource(source), self.config, self._limiters, workers=workers,
                             keyed=True, keep_inputs=self.keep_inputs)
                await self._collect(out.iter_batches(batch_format="pyarrow", batch_size=None), reader, stats,
                                    outbox)
            finally:
                self._drained.set()
                with anyio.CancelScope(shield=True):
                    for limiter in self._limiters:
                        ray.kill(limiter)
                    if self._started:
                        await anyio.to_thread.run_sync(ray.shutdown)
                    self._release_reaper()

    def _release_reaper(self) -> None:
        """The run ended here, not by the driver's death: the watcher exits, killing nothing."""
        global _reaper
        if self._reaper is not None:
            self._reaper.close()
            if _reaper is self._reaper:
                _reaper = None
            self._reaper = None

    async def stop(self, grace: float) -> None:
        """Every worker sends nothing more; wait up to ``grace`` seconds for the blocks they
        are judging to come back (with the rows that were answered)."""
        if self._limiters:
            await anyio.to_thread.run_sync(ray.get, [limiter.stop_sending.remote() for limiter in self._limiters])
        with anyio.move_on_after(grace):
            await self._drained.wait()

    async def _collect(self, batches: Any, reader: Reader, stats: RunStats,
                       outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        seen = SeenKeys(reader.done)
        samples = self.config.samples
        poll = time.monotonic() + _POLL_S
        iterator: Iterator[pa.Table] = iter(batches)
        while True:
            try:
                table = await anyio.to_thread.run_sync(next, iterator, None, abandon_on_cancel=True)
            except Exception as exc:  # noqa: BLE001 - a worker's StopRun, or Ray giving up
                await self._poll(stats)  # a limiter knows why a worker stopped the run...
                raise StopRun(EngineError(f"Ray stopped the run: {_line(exc)}; "  # ...else Ray failed
                                          "run the same command again to resume")) from exc
            if table is None:
                break
            results = results_of(table)
            premises = table.column("premise").to_pylist() if self.keep_inputs else [None] * len(results)
            hypotheses = table.column("hypothesis").to_pylist() if self.keep_inputs else [None] * len(results)
            fresh = seen.add([r.row_id for r in results])
            for result, premise, hypothesis, new in zip(results, premises, hypotheses, fresh, strict=True):
                if not new:
                    continue
                stats.retries += max(0, result.attempts - samples)
                stats.reused += result.attempts == 0 and result.status != STATUS_FAILED
                stats.prompt_tokens += result.prompt_tokens or 0
                stats.completion_tokens += result.completion_tokens or 0
                await outbox.send(FinishedRow(result, premise, hypothesis))
            if time.monotonic() >= poll:
                poll = time.monotonic() + _POLL_S
                await self._poll(stats)
        await self._poll(stats)

    async def _poll(self, stats: RunStats) -> None:
        """The limiters' counters into ``stats``; raise StopRun when one says the run must stop."""
        refs = [limiter.status.remote() for limiter in self._limiters]
        try:
            statuses: list[tuple[StatsSnapshot, BaseException | None]] = await anyio.to_thread.run_sync(ray.get, refs)
        except Exception:  # noqa: BLE001 - the cluster itself is gone: the caller says so
            return
        stats.rate_limited = sum(snapshot["rate_limited"] for snapshot, _ in statuses)
        stats.concurrency = sum(snapshot["concurrency"] for snapshot, _ in statuses)
        stats.emulator = stats.emulator or any(snapshot["emulator"] for snapshot, _ in statuses)
        stats.limits = " | ".join(snapshot["limits"] for snapshot, _ in statuses if snapshot["limits"])
        for _, cause in statuses:
            if cause is not None:
                raise StopRun(cause)


def _line(exc: BaseException) -> str:
    """``Kind: first line``, scrubbed (an address may hold a password)."""
    lines = str(exc).strip().splitlines()
    return scrub_text(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)


def _where(config: RunConfig) -> str:
    return scrub_text(f" at {config.address}") if config.address else ""
