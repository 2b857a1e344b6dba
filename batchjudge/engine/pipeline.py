"""One run, composed of three steps joined by bounded streams::

    Reader ──(work, bounded)──► judge step ──(finished rows, bounded)──► ResultSink
      │      (source, done-set,   (OnlineJudge: limits,                    (parts, run.json,
      │       prompt rendering)    provider, retries, parser;               tracer fan-out)
      │                            or BatchJudge: batch jobs)                  ▲
      └──────────────── rows that fail alone (null premise, bad label) ───────┘

:func:`plan_run` checks everything that can be wrong with the inputs or options before the
run directory is touched, so a refused run leaves nothing half-written. :func:`execute`
builds the provider (which checks the key and the base URL), streams the input once to check
it (:func:`preflight`: label sanity, row keys given twice, the content fingerprint), opens the
run directory (lock, resume check of the settings and of the inputs' content,
``--allow-changed-inputs``, ``--retry-failed``, done-set), builds the three steps and runs
them: the reader and the judge in one task group, the sink outside it, so that a failure that
stops the run (:class:`~batchjudge.engine.retry.StopRun`) cancels only the first two while
the sink drains what already arrived and writes it. Memory is bounded by the two streams and
the sink's flush size, never by the dataset.

A distributed engine (an :class:`Engine`, e.g. Ray's) replaces the reader and the judge: it
judges the reader's pending rows on its workers, each built with :func:`request_setup` and
:func:`online_judge` as here, and feeds the same sink, so the run directory is the same.

Stopping: setting ``stop`` (the CLI does on SIGTERM and Ctrl-C) writes what has arrived,
sends nothing more, waits up to ``stop_grace`` seconds for the replies on the wire, writes
them and returns an incomplete result. Cancelling :func:`execute` instead stops at once: the
sink still writes every row that had reached it (a shielded flush), the provider is closed,
and the cancellation goes on; replies still on the wire are lost and sent again next time.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectSendStream

from batchjudge.adapters.mistral import ApiClient
from batchjudge.adapters.prompts import JSON_OBJECT, PromptAdapter, load_prompt
from batchjudge.core.results import Counts, FinishedRow
from batchjudge.core.tracer import Tracer
from batchjudge.core.types import Provider
from batchjudge.engine.batch import BATCH_DIR, BatchJudge
from batchjudge.engine.budget import Budget, TokenPrices
from batchjudge.engine.checkpoint import RunDir, key_hashes, key_hashes_in_order
from batchjudge.engine.objrundir import run_dir_at
from batchjudge.engine.stores import set_storage_options
from batchjudge.engine.collector import collector_tuned
from batchjudge.engine.config import DEFAULT_MODELS, RunConfig, describe_changes
from batchjudge.engine.dedupe import Dedupe
from batchjudge.engine.duplicates import DuplicateKeys
from batchjudge.engine.inputs import FileChange, InputDigest, changed_inputs_error, input_changes, kept_keys
from batchjudge.engine.judge import JudgeStep, OnlineJudge
from batchjudge.engine.limits import Clock, Limits, SendLimits, Sleep
from batchjudge.engine.providers import make_provider
from batchjudge.engine.reader import Reader, RequestSettings, Work
from batchjudge.engine.record import RunRecord
from batchjudge.engine.retry import RetryPolicy, StopRun, first_error
from batchjudge.engine.sink import ResultSink
from batchjudge.engine.source import Source, open_source
from batchjudge.engine.stats import RunStats, StatsSnapshot
from batchjudge.errors import AuthError, BatchJudgeError, ConfigError, RequestRejectedError

__all__ = [
    "Engine", "Preflight", "ProgressCallback", "RunPlan", "RunResult", "changed_inputs", "check_resume", "execute",
    "online_judge", "plan_run", "preflight", "provider_for", "request_setup",
]

ProgressCallback = Callable[[RunStats], None]


class Engine(Protocol):
    """What fills the sink: the reader and the judge step in this process, or a distributed
    engine judging the same rows elsewhere (a cluster); the run directory, the sink and the
    progress stay this process's."""

    async def feed(self, reader: Reader, stats: RunStats, outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        """Send one finished row into ``outbox`` for each row ``reader`` would read (its source,
        done-set and limit), each at most once; count tokens, retries and 429s in ``stats``;
        raise :class:`~batchjudge.engine.retry.StopRun` when the run must stop; close
        ``outbox`` when done."""
        ...

    async def stop(self, grace: float) -> None:
        """Send nothing more; return once no request is on the wire, or after ``grace``
        seconds (the run then cancels :meth:`feed`)."""
        ...


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A run whose inputs and options have been checked: nothing sent, nothing written yet."""

    config: RunConfig
    source: Source
    adapter: PromptAdapter
    settings: RequestSettings
    fingerprint: dict[str, Any]

    @property
    def total(self) -> int:
        """Input rows the run covers (up to ``--limit``)."""
        return min(self.source.total, self.config.limit or self.source.total)

    @property
    def provider(self) -> str:
        """The provider's name as recorded: the config's, or a provider object's own ``name``."""
        return str(self.fingerprint["provider"])

    @property
    def model(self) -> str:
        """The model every request names."""
        return self.settings.model

    def public_config(self) -> dict[str, Any]:
        """The config as ``run.json`` stores it, naming the provider and model actually used."""
        return {**self.config.public_dict(), "provider": self.provider, "model": self.model}

    def exact(self) -> RunPlan:
        """The same plan with every prompt counted exactly (what a dry run reports)."""
        return dataclasses.replace(self, adapter=_adapter(self.config, self.model, provider=self.provider, exact=True))


@dataclass(slots=True)
class RunResult:
    """What a finished (or stopped) run reports."""

    run_dir: str
    total: int
    counts: Counts
    """Final results by status, over this session and earlier ones."""
    stats: StatsSnapshot
    complete: bool
    """Every input row (up to ``limit``) has a final result."""
    stopped_by: BaseException | None = None
    """What stopped the run early (a rejected API key, an unreachable endpoint), if anything."""
    warnings: list[str] = field(default_factory=list)
    trace: dict[str, int] | None = None
    input_rows: int | None = None
    """Rows of the inputs, whatever ``--limit`` (None: not known)."""

    @property
    def limited(self) -> bool:
        """The run is complete up to ``--limit`` and the inputs hold more rows: not finished."""
        return self.complete and self.input_rows is not None and self.input_rows > self.total

    @property
    def error(self) -> str | None:
        """Why the run stopped early, as ``Kind: message``."""
        stop = self.stopped_by
        return None if stop is None else f"{type(stop).__name__}: {stop}"

    @property
    def exit_code(self) -> int:
        """The CLI's exit status: 0 complete, 2 stopped by configuration (a rejected key, a
        request the server refuses for every row), 1 otherwise (interrupted or stopped by the
        environment: run it again)."""
        if self.complete:
            return 0
        return 2 if isinstance(self.stopped_by, (AuthError, RequestRejectedError)) else 1


_UNCOUNTED = frozenset({"local", "mock"})
"""Providers that bill no tokens: their prompts are not tokenised unless a TPM limit needs it."""


def _adapter(config: RunConfig, model: str, *, provider: str, exact: bool = False) -> PromptAdapter:
    """The prompt adapter of a run: counts only where a limit or a bill needs them."""
    return PromptAdapter(
        load_prompt(config.prompt), model,
        count_tokens=exact or provider not in _UNCOUNTED or config.tpm is not None,
        exact_counts=exact or config.tpm is not None,
        max_context_tokens=config.max_context_tokens, max_output_tokens=config.max_tokens,
    )


def plan_run(config: RunConfig, *, provider: Provider | None = None) -> RunPlan:
    """Check ``config`` and its inputs; raise InputError/ConfigError naming what cannot work.

    ``provider``, when the run will be given one (a :class:`MockProvider`, a custom backend),
    names the run's provider instead of ``config.provider``; its model defaults to that name.
    """
    config.validate()
    if config.storage_options is not None:
        set_storage_options(config.storage_options)
    name = provider.name if provider is not None else config.provider
    if provider is None and (name in ("mistral", "openai") or config.mode == "batch"):
        from batchjudge.adapters.mistral import MISTRAL, OPENAI, normalise_base_url

        dialect = OPENAI if name == "openai" else MISTRAL
        for url in config.base_urls:
            normalise_base_url(url, dialect, allow_insecure_http=config.allow_insecure_http)
    source = open_source(config.inputs, config.columns)
    adapter, settings = request_setup(config, name)
    fingerprint = {
        "provider": name,
        "model": settings.model,
        "prompt": {"spec": config.prompt, "sha256": adapter.fingerprint()},
        "dataset": source.identity(),
        "columns": dict(source.columns),
        "generation": config.generation(),
        "endpoint": config.endpoint if provider is None else None,
    }
    return RunPlan(config, source, adapter, settings, fingerprint)


def request_setup(config: RunConfig, provider: str | None = None) -> tuple[PromptAdapter, RequestSettings]:
    """The prompt adapter and request settings of a run of ``config`` with the provider named
    ``provider`` (default: the config's): what renders a row into its request, here and in
    every worker of a distributed engine."""
    name = provider or config.provider
    adapter = _adapter(config, config.model or DEFAULT_MODELS.get(name, name), provider=name)
    response_format: dict[str, Any] | None
    if config.response_format == "json":
        response_format = JSON_OBJECT
    elif config.response_format == "text":
        response_format = None
    else:
        response_format = adapter.template.response_format
    settings = RequestSettings(
        model=adapter.model, temperature=config.temperature, max_tokens=config.max_tokens,
        seed=config.seed, response_format=response_format,
    )
    return adapter, settings


@dataclass(frozen=True, slots=True)
class Preflight:
    """What the pass before a run found: label-sanity warnings, and what the run reads."""

    warnings: list[str]
    inputs: dict[str, Any]
    """The inputs' content fingerprint, as ``run.json`` stores it (:mod:`~batchjudge.engine.inputs`)."""


def preflight(source: Source, check_labels: bool) -> Preflight:
    """One streamed pass over the input (hashes only): the content fingerprint, the
    label-sanity check's warnings (when ``check_labels``), and InputError when a row key is
    given to more than one row. Every run makes it: a resume compares the fingerprint."""
    from batchjudge.datasets.sanity import LabelChecker

    checker = LabelChecker() if check_labels else None
    duplicates = DuplicateKeys(source)
    digest = InputDigest(source)
    for file, start, batch in source.arrow_batches(2048):
        digest.update(file, start, batch)
        if checker is not None:
            checker.update(batch, origin=file.rel)
        if duplicates.needed:
            duplicates.update(file, start, batch)
    duplicates.check(lambda: source.arrow_batches(2048))
    warnings = [] if checker is None else [f"{w.code}: {w.message}" for w in checker.finish()]
    return Preflight(warnings, digest.record())


def check_resume(plan: RunPlan, stored: dict[str, Any] | None, path: object) -> None:
    """Refuse, naming what changed, to resume a run directory made with other settings."""
    if stored is None or plan.config.overwrite:
        return
    changes = describe_changes(stored["fingerprint"], plan.fingerprint)
    if changes:
        raise ConfigError(
            f"{path} was made with other settings ({'; '.join(changes)}); "
            "resume with the same ones, or pass --overwrite to start over, or use another --out"
        )


def changed_inputs(plan: RunPlan, stored: dict[str, Any] | None, inputs: dict[str, Any]) -> list[FileChange]:
    """The input files whose content differs from what the run read before (``inputs`` is
    :class:`Preflight`'s): InputError naming them, unless ``--allow-changed-inputs`` lets
    the rows of their changed chunks be judged again. A record without ``inputs`` (written
    before they were recorded) compares as unchanged."""
    if stored is None or plan.config.overwrite:
        return []
    changes = input_changes(stored.get("inputs"), inputs, plan.source)
    if changes and not plan.config.allow_changed_inputs:
        raise changed_inputs_error(changes)
    return changes


def _open_record(
    plan: RunPlan, run_dir: RunDir, stats: RunStats, command: list[str] | None, inputs: dict[str, Any]
) -> tuple[RunRecord, np.ndarray, dict[str, int]]:
    """Check a resume is compatible (settings, then the inputs' content against ``inputs``),
    drop the results of changed input rows (``--allow-changed-inputs``), apply
    ``--retry-failed``, and load the done-set (every part checked to be this run's:
    :meth:`~batchjudge.engine.checkpoint.RunDir.verified_parts`).

    Returns the session's ``run.json`` record, the done-set and the stored counts by status.
    """
    config = plan.config
    if config.overwrite:
        run_dir.reset(also=(BATCH_DIR,))
    stored = run_dir.read_meta()
    check_resume(plan, stored, run_dir.path)
    changes = changed_inputs(plan, stored, inputs)
    if changes:
        keep = kept_keys(plan.source, changes)
        dropped = run_dir.drop_rows(
            lambda table: ~np.isin(key_hashes_in_order(table.column("row_id").to_pylist()), keep),
            "the rows of changed inputs")
        stats.warnings.append(f"changed_inputs: {'; '.join(c.describe() for c in changes)}: "
                              f"{dropped:,} result(s) dropped (--allow-changed-inputs)")
    if config.retry_failed:
        run_dir.drop_failed()
    done, counts = run_dir.done_keys()
    stats.done_before = int(done.size)
    record = RunRecord.resumed(stored, plan.public_config(), plan.fingerprint)
    record.inputs = inputs
    record.input_rows = plan.source.total
    record.labelled = plan.source.labelled
    record.warnings = list(stats.warnings)
    record.command = command
    stats.emulator = record.endpoint["emulator"]  # an earlier session's replies said so
    return record, done, counts


def _backend(plan: RunPlan, provider: Provider | None) -> Provider | ApiClient:
    """What the judge step talks through: the provider, or batch mode's API client. Made before
    the run directory is touched, so a missing key or a refused URL leaves nothing behind."""
    config = plan.config
    if config.mode == "batch":
        return ApiClient(api_key=config.api_key, api_key_env=config.api_key_env, base_url=config.base_urls[0],
                         allow_insecure_http=config.allow_insecure_http, timeout=max(config.timeout, 60.0),
                         max_reply_bytes=None)
    if provider is not None:
        return provider
    return provider_for(config, plan.model, base_url=config.base_urls[0], concurrency=config.max_in_flight)


def provider_for(config: RunConfig, model: str, *, base_url: str | None, concurrency: int) -> Provider:
    """The provider ``config`` names, talking to ``base_url`` with ``concurrency`` connections
    (raises ConfigError/AuthError when its key or URL cannot work)."""
    return make_provider(
        config.provider, model=model, api_key=config.api_key, api_key_env=config.api_key_env,
        base_url=base_url, transport=config.transport, concurrency=concurrency, timeout=config.timeout,
        allow_insecure_http=config.allow_insecure_http,
    )


def online_judge(
    config: RunConfig, provider: Provider, limits: SendLimits, stats: RunStats, *, model: str,
    budget: Budget | None = None,
) -> OnlineJudge:
    """The online judge ``config`` asks for (retries, samples, identical requests sent once),
    sending through ``provider`` under ``limits``: the single-process run's, and each
    distributed worker's."""
    policy = RetryPolicy(max_retries=config.max_retries, timeout=config.timeout,
                         backoff_base=config.backoff_base, backoff_cap=config.backoff_cap,
                         max_retry_after=config.max_retry_after)
    return OnlineJudge(provider, limits, policy, stats, model=model, samples=config.samples, budget=budget,
                       dedupe=Dedupe() if config.dedupe else None)


def _judge_step(
    plan: RunPlan, backend: Provider | ApiClient, run_dir: RunDir, stats: RunStats, done: np.ndarray,
    budget: Budget, clock: Clock, sleep: Sleep,
) -> JudgeStep:
    """The judge step the config asks for."""
    config = plan.config
    if isinstance(backend, ApiClient):
        return BatchJudge(backend, run_dir.path, stats, model=plan.model, done=done, dedupe=config.dedupe)
    limits = Limits(concurrency=config.max_in_flight, rps=config.rps, rpm=config.rpm, tpm=config.tpm,
                    expected_completion_tokens=config.expected_completion_tokens, clock=clock, sleep=sleep,
                    stats=stats, min_rps=config.min_rps)
    return online_judge(config, backend, limits, stats, model=plan.model, budget=budget)


async def execute(
    plan: RunPlan,
    *,
    provider: Provider | None = None,
    tracer: Tracer | None = None,
    progress: ProgressCallback | None = None,
    progress_interval: float = 0.25,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
    prices: TokenPrices | None = None,
    stop: anyio.Event | None = None,
    stop_grace: float = 10.0,
    engine: Engine | None = None,
) -> RunResult:
    """Run ``plan`` into its run directory; resume what is there.

    ``provider`` replaces the one the config names (tests, custom backends; the plan must have
    been made with it) and is closed at the end like one the run made; ``tracer`` receives
    every finished row (its owner closes it); ``progress`` is called with live counters (its
    error stops the run and is raised as it is);
    ``clock``/``sleep`` drive every limit, wait and retry (tests pass a fake clock); ``prices``
    (US dollars per token) are needed when the config sets a cost allowance; ``stop``, once
    set, stops the run gracefully (see the module docstring), waiting at most ``stop_grace``
    seconds for replies on the wire; ``engine`` judges the rows elsewhere instead of this
    process's reader and judge steps (the provider made here only checks the key and URL).
    """
    config = plan.config
    if provider is not None and provider.name != plan.provider:
        raise ConfigError(f"the plan names provider {plan.provider!r} but the run was given "
                          f"{provider.name!r}: pass the provider to plan_run too")
    command = config.command_line() if provider is None and not config.from_memory else None
    stats = RunStats(total=plan.total)
    judge: JudgeStep | None = None
    backend = _backend(plan, provider)
    try:
        checked = await anyio.to_thread.run_sync(preflight, plan.source, config.check_labels)
        stats.warnings = list(checked.warnings)
        with run_dir_at(config.out) as run_dir:
            if run_dir.took_over:
                stats.warnings.append(f"lease: {run_dir.took_over}")
            record, done, counts_before = await anyio.to_thread.run_sync(
                _open_record, plan, run_dir, stats, command, checked.inputs)
            budget = Budget(max_tokens=config.max_total_tokens, max_cost=config.max_cost, prices=prices,
                            used_prompt=record.tokens["prompt"], used_completion=record.tokens["completion"])
            if engine is None:
                judge = _judge_step(plan, backend, run_dir, stats, done, budget, clock, sleep)
                in_flight = list(judge.in_flight())
                if in_flight:  # rows of jobs from an earlier session: followed, not sent again
                    done = np.union1d(done, key_hashes(in_flight))
                engine = _HereSteps(judge, max(2 * config.max_in_flight, 64))
            reader = Reader(plan.source, plan.adapter, plan.settings, done=done, limit=config.limit)
            sink = ResultSink(run_dir, record, stats, counts_before=counts_before, tracer=tracer,
                              flush_rows=config.flush_rows, flush_seconds=config.flush_seconds)
            await sink.write_record()
            with collector_tuned():
                stopped = await _run_steps(reader, engine, sink, stats, max(2 * config.max_in_flight, 64), progress,
                                           progress_interval, _Stop(stop, stop_grace))
            await sink.write_record()
            counts = sink.counts
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_SECONDS):  # a cancelled run too
            await (judge.aclose() if judge is not None else backend.aclose())
    complete = stopped is None and counts["done"] >= stats.total
    return RunResult(os.fspath(config.out), stats.total, counts, stats.snapshot(), complete, stopped,
                     warnings=list(stats.warnings), input_rows=plan.source.total)


_CLOSE_SECONDS = 5.0
"""How long closing the provider's connections may take when the run ends, however it ends."""


@dataclass(frozen=True, slots=True)
class _Stop:
    """The graceful stop a caller may ask for: an event, and how long replies may take."""

    event: anyio.Event | None
    grace: float


class _HereSteps:
    """The :class:`Engine` of a single-process run: the reader and the judge step in one
    group, joined by a bounded stream of work."""

    def __init__(self, judge: JudgeStep, capacity: int) -> None:
        self.judge = judge
        self.capacity = capacity

    async def feed(self, reader: Reader, stats: RunStats, outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        work_send, work_recv = anyio.create_memory_object_stream[Work](self.capacity)
        async with outbox, anyio.create_task_group() as steps:
            steps.start_soon(reader.run, work_send, outbox.clone())
            steps.start_soon(self.judge.run, work_recv, outbox.clone())

    async def stop(self, grace: float) -> None:
        await self.judge.stop(grace)


async def _run_steps(
    reader: Reader, engine: Engine, sink: ResultSink, stats: RunStats, capacity: int,
    progress: ProgressCallback | None, interval: float, stop: _Stop,
) -> BaseException | None:
    """The engine's feed in one group, the sink (and the progress ticker) outside it; returns
    what stopped the run, if anything. An error of the sink (a full disk) is raised as it is,
    not as an exception group."""
    done_send, done_recv = anyio.create_memory_object_stream[FinishedRow](capacity)
    stopped: BaseException | None = None
    finished = anyio.Event()
    try:
        async with anyio.create_task_group() as outer:
            outer.start_soon(sink.run, done_recv)
            if progress is not None:
                outer.start_soon(_tick, stats, progress, interval, finished)
            try:
                async with done_send, anyio.create_task_group() as steps:
                    if stop.event is not None:
                        outer.start_soon(_stop_when_asked, stop, finished, engine, sink, steps.cancel_scope)
                    steps.start_soon(engine.feed, reader, stats, done_send.clone())
            except* StopRun as group:
                stopped = first_error(group).cause
            finally:
                finished.set()
    except* BatchJudgeError as group:
        raise first_error(group) from None
    except* _ProgressFailed as group:
        raise first_error(group).error from None
    return stopped


class _ProgressFailed(Exception):
    """The caller's progress callback raised ``error``: the run stops (what arrived is
    written) and ``error`` reaches the caller as it is, not inside an exception group."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _stop_when_asked(
    stop: _Stop, finished: anyio.Event, engine: Engine, sink: ResultSink, steps: anyio.CancelScope
) -> None:
    """Once ``stop`` is set (unless the run finishes first): write what arrived, let the
    engine stop sending and wait for its replies, then cancel its feed."""
    assert stop.event is not None
    event = stop.event
    async with anyio.create_task_group() as watch:

        async def end_with_run() -> None:
            await finished.wait()
            watch.cancel_scope.cancel()

        watch.start_soon(end_with_run)
        await event.wait()
        sink.stats.stopping = True
        await sink.flush()  # what arrived is safe before the wait, should a SIGKILL follow
        await engine.stop(stop.grace)
        steps.cancel()
        watch.cancel_scope.cancel()


async def _tick(stats: RunStats, progress: ProgressCallback, interval: float, finished: anyio.Event) -> None:
    while not finished.is_set():
        _report(progress, stats)
        with anyio.move_on_after(interval):
            await finished.wait()
    _report(progress, stats)


def _report(progress: ProgressCallback, stats: RunStats) -> None:
    try:
        progress(stats)
    except Exception as exc:
        raise _ProgressFailed(exc) from exc
