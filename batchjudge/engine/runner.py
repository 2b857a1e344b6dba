"""One run: a reader, N workers and a writer in one anyio task group, joined by bounded streams.

::

    reader ──(requests, bounded)──► N workers ──(results, bounded)──► writer ──► results/part-*.parquet
       │                                                                 ▲
       └────────────── rows that fail alone (null premise, bad label) ───┘

Memory is bounded by the two stream capacities and the writer's flush size, never by the
dataset. Everything that can be wrong with the inputs or options is checked before the run
directory is touched, so a refused run leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchjudge.adapters.parsing import ParsedVerdict, aggregate_votes, parse_verdict
from batchjudge.adapters.prompts import PromptAdapter, load_prompt
from batchjudge.engine.batch import execute_batch
from batchjudge.engine.checkpoint import RunDir, key_hash
from batchjudge.engine.config import RunConfig, describe_changes
from batchjudge.engine.providers import make_provider
from batchjudge.engine.scheduler import CallOutcome, Limits, call_with_retries
from batchjudge.core.results import RESULT_COLUMNS, STATUS_FAILED, STATUS_OK
from batchjudge.engine.source import Source, SourceRow, open_source
from batchjudge.engine.stats import RunStats
from batchjudge.core.types import JudgeReply, JudgeRequest, Provider, TraceRecord, Tracer
from batchjudge.errors import ConfigError

__all__ = ["RunResult", "run_async"]

ProgressCallback = Callable[[RunStats], None]

_JSON_FORMAT = {"type": "json_object"}


@dataclass(slots=True)
class RunResult:
    """What a finished (or stopped) run reports."""

    run_dir: str
    total: int
    counts: dict[str, int]
    """Final results by status, over this session and earlier ones."""
    stats: dict[str, float | int]
    complete: bool
    """Every input row (up to ``limit``) has a final result."""
    error: str | None = None
    """Why the run stopped early (a rejected API key), if it did."""
    warnings: list[str] = field(default_factory=list)
    trace: dict[str, int] | None = None

    @property
    def exit_code(self) -> int:
        """The CLI's exit status: 0 complete, 2 stopped by configuration (bad key), 1 otherwise."""
        if self.complete:
            return 0
        return 2 if self.error and self.error.startswith("AuthError") else 1


@dataclass(slots=True)
class _Work:
    row: SourceRow
    request: JudgeRequest
    truncated: int


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("batchjudge")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class _Run:
    """The state of one run between setup and the end of its task group."""

    def __init__(self, config: RunConfig, source: Source, adapter: PromptAdapter, provider: Provider,
                 run_dir: RunDir, meta: dict[str, Any], done: np.ndarray, stats: RunStats,
                 tracer: Tracer | None, counts_before: dict[str, int]) -> None:
        self.config = config
        self.source = source
        self.adapter = adapter
        self.provider = provider
        self.run_dir = run_dir
        self.meta = meta
        self.counts_before = counts_before
        """Results by status already in the run directory when this session began."""
        self.done = done
        self.stats = stats
        self.tracer = tracer
        self.limits = Limits(concurrency=config.concurrency, rps=config.rps, tpm=config.tpm,
                             expected_completion_tokens=min(64, config.max_tokens))
        self.stats.concurrency = config.concurrency
        self.fatal: BaseException | None = None
        self.response_format = self._response_format()
        self.model = config.resolved_model

    def _response_format(self) -> dict[str, Any] | None:
        if self.config.response_format == "json":
            return _JSON_FORMAT
        if self.config.response_format == "text":
            return None
        return self.adapter.template.response_format

    # -- reader ------------------------------------------------------------------------
    async def read(self, work: MemoryObjectSendStream[_Work],
                   results: MemoryObjectSendStream[dict[str, Any]]) -> None:
        limit = self.config.limit
        seen = 0
        async with work, results:
            batches = self.source.batches(512)
            while True:
                batch = await anyio.to_thread.run_sync(next, batches, None)
                if batch is None:
                    return
                if limit is not None and seen + len(batch) > limit:
                    batch = batch[: limit - seen]
                seen += len(batch)
                pending = batch
                if self.done.size:
                    hashes = np.fromiter((key_hash(r.row_id) for r in batch), np.uint64, len(batch))
                    keep = ~np.isin(hashes, self.done)
                    pending = [r for r, k in zip(batch, keep) if k]
                for row in pending:
                    item = self._prepare(row)
                    if isinstance(item, _Work):
                        await work.send(item)
                    else:
                        await results.send(item)
                if limit is not None and seen >= limit:
                    return

    def _prepare(self, row: SourceRow) -> _Work | dict[str, Any]:
        if row.problem is not None:
            return self._result(row, STATUS_FAILED, error=f"InputError: {row.problem}", attempts=0)
        assert row.premise is not None and row.hypothesis is not None
        try:
            rendered = self.adapter.render(row.premise, row.hypothesis)
        except Exception as exc:  # noqa: BLE001 - a row that cannot be rendered fails alone
            return self._result(row, STATUS_FAILED, error=f"{type(exc).__name__}: {exc}", attempts=0)
        request = JudgeRequest(
            row_id=row.row_id,
            messages=rendered.messages,
            premise=row.premise,
            hypothesis=row.hypothesis,
            model=self.model,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            seed=self.config.seed,
            response_format=self.response_format,
            prompt_tokens=rendered.prompt_tokens,
        )
        return _Work(row, request, rendered.truncated_tokens)

    # -- workers -----------------------------------------------------------------------
    async def work(self, inbox: MemoryObjectReceiveStream[_Work],
                   results: MemoryObjectSendStream[dict[str, Any]], scope: anyio.CancelScope) -> None:
        async with inbox, results:
            async for item in inbox:
                self.stats.in_flight += 1
                try:
                    result = await self._judge(item)
                finally:
                    self.stats.in_flight -= 1
                if result is None:  # a fatal error: stop everything, mark nothing done
                    scope.cancel()
                    return
                await results.send(result)

    async def _judge(self, item: _Work) -> dict[str, Any] | None:
        outcomes: list[CallOutcome] = []
        for sample in range(self.config.samples):
            request = item.request
            if sample:
                seed = (request.seed or 0) + sample
                request = dataclasses.replace(request, seed=seed)
            outcome = await call_with_retries(
                self.provider, request, self.limits, self.stats,
                max_retries=self.config.max_retries, timeout=self.config.timeout,
                backoff_base=self.config.backoff_base, backoff_cap=self.config.backoff_cap,
            )
            if outcome.fatal is not None:
                self.fatal = self.fatal or outcome.fatal
                return None
            outcomes.append(outcome)
            if outcome.reply is None:
                break
        return self._finish(item, outcomes)

    def _finish(self, item: _Work, outcomes: list[CallOutcome]) -> dict[str, Any]:
        attempts = sum(o.attempts for o in outcomes)
        replies = [o.reply for o in outcomes if o.reply is not None]
        prompt_tokens = sum(r.prompt_tokens for r in replies)
        completion_tokens = sum(r.completion_tokens for r in replies)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        latencies = [o.latency_ms for o in outcomes if o.latency_ms is not None]
        latency = sum(latencies) / len(latencies) if latencies else None
        last = outcomes[-1]
        if last.reply is None:
            return self._result(item.row, STATUS_FAILED, error=last.error, attempts=attempts,
                                truncated=item.truncated, prompt_tokens=prompt_tokens or None,
                                completion_tokens=completion_tokens or None)
        parsed = _parse(replies)
        return self._result(
            item.row, parsed.status, verdict=parsed.verdict, score=parsed.score, reason=parsed.reason,
            raw=_raw(replies), error=parsed.error, attempts=attempts, latency_ms=latency,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            model=replies[-1].model or self.model, truncated=item.truncated,
            messages=item.request.messages,
        )

    def _result(self, row: SourceRow, status: str, *, verdict: int | None = None,
                score: float | None = None, reason: str | None = None, raw: str | None = None,
                error: str | None = None, attempts: int = 0, latency_ms: float | None = None,
                prompt_tokens: int | None = None, completion_tokens: int | None = None,
                model: str | None = None, truncated: int = 0,
                messages: list[dict[str, str]] | None = None) -> dict[str, Any]:
        return {
            "row_id": row.row_id, "status": status, "verdict": verdict, "score": score,
            "reason": reason, "raw_response": raw, "error": error, "attempts": attempts,
            "latency_ms": latency_ms, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "model": model or self.model,
            "target": row.target, "truncated_tokens": truncated,
            "_premise": row.premise, "_hypothesis": row.hypothesis, "_messages": messages,
        }

    # -- writer ------------------------------------------------------------------------
    async def write(self, inbox: MemoryObjectReceiveStream[dict[str, Any]]) -> None:
        buffer: dict[str, list[Any]] = {c: [] for c in RESULT_COLUMNS}
        deadline = anyio.current_time() + self.config.flush_seconds
        try:
            async with inbox:
                while True:
                    try:  # drain what is ready without a cancel scope per row
                        self._collect(inbox.receive_nowait(), buffer)
                    except anyio.WouldBlock:
                        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                            try:
                                self._collect(await inbox.receive(), buffer)
                            except anyio.EndOfStream:
                                return
                    except anyio.EndOfStream:
                        return
                    if len(buffer["row_id"]) >= self.config.flush_rows or anyio.current_time() >= deadline:
                        await self._flush(buffer)
                        deadline = anyio.current_time() + self.config.flush_seconds
        finally:
            with anyio.CancelScope(shield=True):
                await self._flush(buffer)

    def _collect(self, result: dict[str, Any], buffer: dict[str, list[Any]]) -> None:
        premise, hypothesis = result.pop("_premise"), result.pop("_hypothesis")
        messages = result.pop("_messages") or []
        for column in RESULT_COLUMNS:
            buffer[column].append(result[column])
        status = result["status"]
        if status == STATUS_OK:
            self.stats.ok += 1
        elif status == STATUS_FAILED:
            self.stats.failed += 1
        else:
            self.stats.parse_error += 1
        if self.tracer is not None:
            self.tracer.submit(TraceRecord(result["row_id"], premise or "", hypothesis or "", messages, result))

    async def _flush(self, buffer: dict[str, list[Any]]) -> None:
        if not buffer["row_id"]:
            return
        columns = {c: list(v) for c, v in buffer.items()}
        for values in buffer.values():
            values.clear()
        await anyio.to_thread.run_sync(self.run_dir.write_part, columns)
        self.stats.flushed_parts += 1
        await anyio.to_thread.run_sync(self._write_meta)

    def _write_meta(self) -> None:
        before = self.counts_before
        counts = {
            "ok": before.get("ok", 0) + self.stats.ok,
            "parse_error": before.get("parse_error", 0) + self.stats.parse_error,
            "failed": before.get("failed", 0) + self.stats.failed,
        }
        counts["done"] = sum(counts.values())
        counts["total"] = self.stats.total
        self.meta.update(counts=counts, updated_at=_now())
        self.run_dir.write_meta(self.meta)


def _parse(replies: list[JudgeReply]) -> ParsedVerdict:
    parsed = [parse_verdict(r.text) for r in replies]
    return parsed[0] if len(parsed) == 1 else aggregate_votes(parsed)


def _raw(replies: list[JudgeReply]) -> str:
    if len(replies) == 1:
        return replies[0].text
    return orjson.dumps([r.text for r in replies]).decode()


def _fingerprint(config: RunConfig, source: Source, adapter: PromptAdapter) -> dict[str, Any]:
    return {
        "provider": config.provider,
        "model": config.resolved_model,
        "prompt": {"spec": config.prompt, "sha256": adapter.fingerprint()},
        "dataset": source.identity(),
        "columns": dict(source.columns),
        "generation": config.generation(),
    }


def _report_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's report figures (as ``batchjudge report --json``) for the tracer's evaluation,
    so Weave's evaluation view shows accuracy, F1 and ROC-AUC as in the cookbook."""
    from batchjudge.report.loading import load_run
    from batchjudge.report.prices import load_prices
    from batchjudge.report.summary import summarize

    return summarize(load_run(run_dir), load_prices(None))


def _check_labels(source: Source) -> list[str]:
    """The datasets' label-sanity check over the whole input, streamed (hashes only)."""
    from batchjudge.datasets.sanity import LabelChecker

    checker = LabelChecker()
    for file, _, batch in source.arrow_batches(2048):
        checker.update(batch, origin=file.rel)
    return [f"{w.code}: {w.message}" for w in checker.finish()]


def _prepare_run_dir(config: RunConfig, run_dir: RunDir, fingerprint: dict[str, Any],
                     stats: RunStats) -> tuple[dict[str, Any], np.ndarray, dict[str, int]]:
    """Check a resume is compatible, apply ``--retry-failed``, and load the done-set.

    Returns the new ``run.json`` content, the done-set and the stored counts by status.
    """
    stored = run_dir.read_meta()
    if stored is not None and config.overwrite:
        for part in run_dir.parts():
            part.unlink()
        stored = None
    if stored is not None:
        changes = describe_changes(stored["fingerprint"], fingerprint)
        if changes:
            raise ConfigError(
                f"{run_dir.path} was made with other settings ({'; '.join(changes)}); "
                "resume with the same ones, or pass --overwrite to start over, or use another --out"
            )
    if config.retry_failed:
        run_dir.drop_failed()
    done, counts = run_dir.done_keys()
    stats.done_before = int(done.size)
    meta: dict[str, Any] = {
        "batchjudge_version": _version(),
        "python": platform.python_version(),
        "created_at": (stored or {}).get("created_at", _now()),
        "config": config.public_dict(),
        "fingerprint": fingerprint,
        "sessions": (stored or {}).get("sessions", 0) + 1,
    }
    return meta, done, counts


async def run_async(
    config: RunConfig,
    *,
    provider: Provider | None = None,
    progress: ProgressCallback | None = None,
    tracer: Tracer | None = None,
    progress_interval: float = 0.25,
) -> RunResult:
    """Judge every row of ``config.inputs`` into ``config.out``; resume when it exists.

    Raises :class:`~batchjudge.errors.InputError` / :class:`ConfigError` /
    :class:`~batchjudge.errors.CheckpointError` before anything is sent or written when the
    inputs or options cannot work. ``provider`` replaces the one named in the config (tests,
    custom backends); ``progress`` is called with live counters while the run works.
    """
    config.validate()
    source = open_source(config.inputs, config.columns)
    adapter = PromptAdapter(
        load_prompt(config.prompt), config.resolved_model,
        count_tokens=config.provider != "local" or config.tpm is not None,
        exact_counts=config.tpm is not None,
        max_context_tokens=config.max_context_tokens, max_output_tokens=config.max_tokens,
    )
    fingerprint = _fingerprint(config, source, adapter)
    if provider is None:
        provider = make_provider(
            config.provider, model=config.resolved_model, api_key=config.api_key,
            base_url=config.base_url, transport=config.transport,
            concurrency=config.concurrency, timeout=config.timeout,
        )
    if tracer is None and config.trace:
        from batchjudge.adapters.tracing import make_tracer

        tracer = make_tracer(config.trace, sample_rate=config.trace_sample,
                             run_name=os.path.basename(os.path.abspath(config.out)),
                             run_config=config.public_dict())
    stats = RunStats(total=min(source.total, config.limit or source.total))
    if config.check_labels:
        stats.warnings = await anyio.to_thread.run_sync(_check_labels, source)
    summary: dict[str, Any] = {}
    trace_counts: dict[str, int] | None = None
    try:
        with RunDir(config.out) as run_dir:
            meta, done, counts_before = _prepare_run_dir(config, run_dir, fingerprint, stats)
            meta.update(labelled=source.labelled, warnings=stats.warnings)
            run = _Run(config, source, adapter, provider, run_dir, meta, done, stats, tracer, counts_before)
            run._write_meta()
            await (execute_batch if config.mode == "batch" else _execute)(run, progress, progress_interval)
            run._write_meta()
            counts = {k: run.meta["counts"][k] for k in ("ok", "parse_error", "failed")}
            summary = {"counts": counts, "stats": stats.snapshot()}
            if tracer is not None:
                summary["metrics"] = await anyio.to_thread.run_sync(_report_metrics, config.out)
    finally:
        await provider.aclose()
        if tracer is not None:
            trace_counts = await tracer.aclose(summary or None)
            stats.trace_dropped = trace_counts.get("dropped", 0)
    complete = run.fatal is None and sum(counts.values()) >= stats.total
    error = None if run.fatal is None else f"{type(run.fatal).__name__}: {run.fatal}"
    return RunResult(str(config.out), stats.total, counts, stats.snapshot(), complete, error,
                     warnings=list(stats.warnings), trace=trace_counts)


async def _execute(run: _Run, progress: ProgressCallback | None, interval: float) -> None:
    """Run the reader and workers in one group, the writer (and ticker) outside it.

    A fatal error cancels only the reader and workers: their send ends close, the writer
    drains what already arrived and flushes it, then ends on its own.
    """
    capacity = max(2 * run.config.concurrency, 64)
    work_send, work_recv = anyio.create_memory_object_stream[_Work](capacity)
    res_send, res_recv = anyio.create_memory_object_stream[dict[str, Any]](capacity)
    stop = anyio.Event()
    async with anyio.create_task_group() as outer:
        outer.start_soon(run.write, res_recv)
        if progress is not None:
            outer.start_soon(_tick, run.stats, progress, interval, stop)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run.read, work_send, res_send.clone())
                for _ in range(run.config.concurrency):
                    tg.start_soon(run.work, work_recv.clone(), res_send.clone(), tg.cancel_scope)
                work_recv.close()
                res_send.close()
        finally:
            stop.set()


async def _tick(stats: RunStats, progress: ProgressCallback, interval: float, stop: anyio.Event) -> None:
    while not stop.is_set():
        progress(stats)
        with anyio.move_on_after(interval):
            await stop.wait()
    progress(stats)
