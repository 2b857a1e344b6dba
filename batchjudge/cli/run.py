"""``batchjudge run``: parse the options, call :func:`batchjudge.run_async`, render progress.

SIGTERM and Ctrl-C stop the run gracefully (the engine's ``stop`` event): what has arrived is
written, nothing more is sent, the replies on the wire are waited for and written, and the
command exits 143 (SIGTERM) or 130 (Ctrl-C) saying to run it again to resume. A second
signal acts at once.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from batchjudge.api import event_loop_options, run_async
from batchjudge.cli._console import err_console, fail, fail_with
from batchjudge.cli._options import flag
from batchjudge.engine.config import RunConfig
from batchjudge.engine.pipeline import RunResult
from batchjudge.engine.stats import RunStats

__all__ = ["register"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)



class _ProgressView:
    """Renders :class:`RunStats` as a live bar: rows, rows/s, tokens, retries, failures, ETA."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]judging"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.1f} rows/s"),
            TextColumn("tok {task.fields[tokens]}"),
            TextColumn("retries {task.fields[retries]}"),
            TextColumn("429s {task.fields[r429]}"),
            TextColumn("[red]failed {task.fields[failed]}"),
            TimeRemainingColumn(),
            TextColumn("[yellow]{task.fields[note]}"),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("run", total=None, rate=0.0, tokens=0, retries=0,
                                           r429=0, failed=0, note="")

    def __call__(self, stats: RunStats) -> None:
        if not self.progress.live.is_started:  # shown once the run has passed validation
            for warning in stats.warnings:
                self.progress.console.print(f"[yellow]warning:[/] {warning}", highlight=False)
            self.progress.start()
        self.progress.update(
            self.task, total=stats.total, completed=stats.completed, rate=stats.rows_per_second,
            tokens=stats.prompt_tokens + stats.completion_tokens, retries=stats.retries,
            r429=stats.rate_limited, failed=stats.failed, note=escape(_note(stats)),
        )


def _note(stats: RunStats) -> str:
    """What the run is waiting for, when it is not judging: an outage, or stopping."""
    if stats.stopping:
        return f"stopping: waiting for {stats.in_flight} replies" if stats.in_flight else "stopping"
    if stats.outage:
        return f"endpoint unreachable ({stats.outage}): sending paused, probing"
    return ""


def _summary(console: Console, result: RunResult, *, show_warnings: bool) -> None:
    s = result.stats
    counts = result.counts
    done = counts["done"]
    console.print(
        f"[bold]{result.run_dir}[/]: {done}/{result.total} rows have results — "
        f"ok {counts['ok']}, parse_error {counts['parse_error']}, failed {counts['failed']} "
        f"(this session: {s['finished']} rows in {s['elapsed_s']:.1f}s, {s['rows_per_second']:.1f} rows/s, "
        f"{s['prompt_tokens'] + s['completion_tokens']} tokens, {s['retries']} retries, "
        f"{s['rate_limited']} rate-limited)",
        highlight=False,
    )
    if show_warnings:  # otherwise the progress view showed them before the run began
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if result.trace is not None:
        console.print(f"tracing: {result.trace}", highlight=False)
    if result.error:
        err_console.print(f"[bold red]error:[/] {escape(result.error)}", highlight=False, soft_wrap=True)
    if not result.complete:
        console.print("run again with the same command to resume", highlight=False)


async def _run_until_signalled(config: RunConfig, view: _ProgressView | None, signals: list[int]) -> RunResult:
    """Run ``config``; the first SIGTERM or SIGINT (recorded in ``signals``) stops it
    gracefully. The handlers are removed once one arrived, so a second signal acts at once."""
    stop = anyio.Event()

    async def watch() -> None:
        with anyio.open_signal_receiver(*_STOP_SIGNALS) as received:
            async for signum in received:
                signals.append(int(signum))
                stop.set()
                return

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            result = await run_async(config, progress=view, stop=stop)
            group.cancel_scope.cancel()
    except BaseExceptionGroup as errors:  # the run's own error, not the group around it
        first = errors.exceptions[0]
        while isinstance(first, BaseExceptionGroup) and len(first.exceptions) == 1:
            first = first.exceptions[0]
        if len(errors.exceptions) == 1 and not isinstance(first, BaseExceptionGroup):
            raise first from first.__cause__
        raise
    return result


def run_command(
    inputs: Annotated[list[str], typer.Argument(help="Parquet files, directories of shards or globs (JSONL/CSV too).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created, or resumed).")],
    provider: Annotated[str, typer.Option(help="Judge backend: local (offline) or mistral.")] = "local",
    model: Annotated[Optional[str], typer.Option(help="Model name (default per provider).")] = None,
    prompt: Annotated[str, typer.Option(help="Prompt preset (zero-shot, few-shot, ft) or template file.")] = "zero-shot",
    columns: Annotated[Optional[str], typer.Option(help="Column mapping, e.g. premise=doc,hypothesis=summary,target=label,id=uid.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="Mistral-compatible server (e.g. the emulator).")] = None,
    transport: Annotated[Optional[str], typer.Option(help="mistral provider transport: http (lean) or sdk.")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at most.")] = 16,
    rps: Annotated[Optional[float], typer.Option(help="Requests per second, shared by all workers.")] = None,
    tpm: Annotated[Optional[float], typer.Option(help="Tokens per minute, shared by all workers.")] = None,
    max_retries: Annotated[int, typer.Option(help="Retries per row for 429/5xx/timeouts.")] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 60.0,
    limit: Annotated[Optional[int], typer.Option(help="Judge only the first N rows.")] = None,
    retry_failed: Annotated[bool, flag("retry-failed", "Re-send the rows that failed.")] = False,
    overwrite: Annotated[bool, flag("overwrite", "Discard RUN_DIR's results and start over.")] = False,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.0,
    max_tokens: Annotated[int, typer.Option(help="Completion tokens at most.")] = 256,
    seed: Annotated[Optional[int], typer.Option(help="Random seed sent with each request.")] = None,
    samples: Annotated[int, typer.Option(help="Self-consistency: samples per row, majority verdict.")] = 1,
    response_format: Annotated[str, typer.Option(help="template (the prompt's own), json or text.")] = "template",
    max_context_tokens: Annotated[Optional[int], typer.Option(help="Cut documents to fit this context.")] = None,
    flush_rows: Annotated[int, typer.Option(help="Write a results part every N rows...")] = 2000,
    flush_seconds: Annotated[float, typer.Option(help="...or every T seconds.")] = 5.0,
    trace: Annotated[Optional[str], typer.Option(help="weave:ENTITY/PROJECT or local:DIR.")] = None,
    trace_sample: Annotated[float, typer.Option(help="Fraction of rows traced.")] = 1.0,
    quiet: Annotated[bool, flag("quiet", "No progress bar.", "-q")] = False,
    mode: Annotated[str, typer.Option(help="online (one request per row) or batch (Mistral batch jobs; resumable).")] = "online",
    allow_insecure_http: Annotated[bool, flag("allow-insecure-http", "Allow sending the key over plain http:// to another machine.")] = False,
    max_retry_after: Annotated[float, typer.Option(help="Obey a server's Retry-After up to this many seconds; longer is an outage.")] = 120.0,
    debug: Annotated[bool, flag("debug", "Show the traceback of an error.")] = False,
) -> None:
    """Judge every row of INPUT into RUN_DIR; the same command again resumes."""
    config = RunConfig(
        inputs=inputs, out=out, provider=provider, model=model, prompt=prompt, columns=columns,
        base_url=base_url, allow_insecure_http=allow_insecure_http, transport=transport,
        concurrency=concurrency, rps=rps, tpm=tpm, max_retry_after=max_retry_after,
        max_retries=max_retries, timeout=timeout, limit=limit, retry_failed=retry_failed,
        overwrite=overwrite, temperature=temperature, max_tokens=max_tokens, seed=seed,
        samples=samples, response_format=response_format,  # type: ignore[arg-type]
        max_context_tokens=max_context_tokens, flush_rows=flush_rows,
        flush_seconds=flush_seconds, trace=trace, trace_sample=trace_sample,
        mode=mode,  # type: ignore[arg-type]
    )
    console = err_console
    view = None if quiet else _ProgressView(console)
    signals: list[int] = []
    try:
        result = anyio.run(_run_until_signalled, config, view, signals, backend_options=event_loop_options())
    except KeyboardInterrupt:  # a second Ctrl-C, while the first one's stop was under way
        raise fail("interrupted; run the same command again to resume", 130) from None
    except Exception as exc:  # noqa: BLE001 - one line (and exit code) for every error
        raise fail_with(exc, debug=debug) from None
    finally:
        if view is not None:
            view.progress.stop()
    _summary(console, result, show_warnings=view is None)
    if signals and not result.complete:
        name = signal.Signals(signals[0]).name
        raise fail(f"stopped by {name}: every reply received is written; run the same command again to resume",
                   128 + signals[0])
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add ``run`` to the CLI."""
    app.command("run")(run_command)
