"""``batchjudge run``: parse the options, call :func:`batchjudge.run_async`, render progress.

The engine (pyarrow, polars, the HTTP client) and the progress view are imported inside the
command, so ``batchjudge --help`` and argument errors do not pay for them.

SIGTERM and Ctrl-C stop the run gracefully (the engine's ``stop`` event): what has arrived is
written, nothing more is sent, the replies on the wire are waited for and written, and the
command exits 143 (SIGTERM) or 130 (Ctrl-C) saying to run it again to resume. A second
signal acts at once. Every error is one line (``fail_with``); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from batchjudge.cli._console import err_console, fail, fail_with, out_console
from batchjudge.cli._options import STORAGE_OPTION, flag, use_storage_options
from batchjudge.engine.config import RunConfig

if TYPE_CHECKING:
    from batchjudge.cli._progress import ProgressView
    from batchjudge.engine.pipeline import RunResult

__all__ = ["register"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def _run_until_signalled(config: RunConfig, view: ProgressView | None, signals: list[int]) -> RunResult:
    """Run ``config``; the first SIGTERM or SIGINT (recorded in ``signals``) stops it
    gracefully. The handlers are removed once one arrived, so a second signal acts at once."""
    import anyio

    from batchjudge.api import run_async

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
    out: Annotated[str, typer.Option("--out", "-o", help="Run directory (created, or resumed): a path, or an s3:// URL.")],
    provider: Annotated[str, typer.Option(help="Judge backend: local (offline), mistral, or openai (any OpenAI-compatible server: vLLM, llama.cpp, TGI, Ollama).")] = "local",
    model: Annotated[Optional[str], typer.Option(help="Model name (default per provider).")] = None,
    prompt: Annotated[str, typer.Option(help="Prompt preset (zero-shot, few-shot, ft) or template file.")] = "zero-shot",
    columns: Annotated[Optional[str], typer.Option(help="Column mapping, e.g. premise=doc,hypothesis=summary,target=label,id=uid.")] = None,
    base_url: Annotated[Optional[list[str]], typer.Option(help="The server's URL (default: the provider's API; e.g. the emulator's); repeat it for several (--engine ray).")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding the key (default MISTRAL_API_KEY, or OPENAI_API_KEY for openai).")] = None,
    allow_insecure_http: Annotated[bool, flag("allow-insecure-http", "Allow sending the key over plain http:// to another machine.")] = False,
    transport: Annotated[Optional[str], typer.Option(help="mistral provider transport: http (lean) or sdk.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Requests in flight at most (a ceiling; default: sized from the pace and the measured latency, up to 1,024).")] = None,
    rps: Annotated[Optional[float], typer.Option(help="Requests per second, shared by all workers (default: learned from the server).")] = None,
    rpm: Annotated[Optional[float], typer.Option(help="Requests per minute (default: learned from the server).")] = None,
    tpm: Annotated[Optional[float], typer.Option(help="Tokens per minute (default: learned from the server).")] = None,
    min_rps: Annotated[float, typer.Option(help="Slowest pace accepted: a server limit allowing fewer requests a second stops the run (resumable) instead of crawling.")] = 0.1,
    max_retries: Annotated[int, typer.Option(help="Retries per row for 429/5xx/timeouts.")] = 5,
    max_retry_after: Annotated[float, typer.Option(help="Obey a server's Retry-After up to this many seconds; longer is an outage.")] = 120.0,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 60.0,
    limit: Annotated[Optional[int], typer.Option(help="Judge only the first N rows.")] = None,
    max_total_tokens: Annotated[Optional[int], typer.Option(help="Stop sending once the run has used this many tokens (resumable).")] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="Stop sending once the run has cost this many USD (resumable).")] = None,
    retry_failed: Annotated[bool, flag("retry-failed", "Re-send the rows that failed.")] = False,
    overwrite: Annotated[bool, flag("overwrite", "Discard RUN_DIR's results and start over.")] = False,
    allow_changed_inputs: Annotated[bool, flag("allow-changed-inputs", "Resume although an input changed: judge the rows of its changed chunks again.")] = False,
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
    dedupe: Annotated[bool, flag("dedupe", "Send identical requests once and reuse the answer.")] = True,
    dry_run: Annotated[bool, flag("dry-run", "Count rows, calls and exact tokens, price them; send and write nothing.")] = False,
    prices: Annotated[Optional[Path], typer.Option(help="JSON or TOML prices (USD per million tokens by model) for --dry-run and the live cost.")] = None,
    progress_every: Annotated[float, typer.Option(min=0.1, help="Seconds between progress lines when stderr is not a terminal.")] = 10.0,
    debug: Annotated[bool, flag("debug", "Show the traceback of an error.")] = False,
    engine: Annotated[str, typer.Option(help="process (this process) or ray (a Ray cluster; pip install \"batchjudge\\[ray]\").")] = "process",
    address: Annotated[Optional[str], typer.Option(help="--engine ray: the Ray cluster to join (default: start Ray here).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="--engine ray: judging actors (default: one per CPU).")] = None,
    storage_option: Annotated[Optional[list[str]], STORAGE_OPTION] = None,
) -> None:
    """Judge every row of INPUT into RUN_DIR; the same command again resumes."""
    if not math.isfinite(progress_every):  # the run's own numbers are checked by RunConfig.validate
        raise fail(f"--progress-every must be a finite number, got {progress_every}")
    try:
        storage_options = use_storage_options(storage_option)
    except Exception as exc:  # noqa: BLE001 - one line (and exit code) for every error
        raise fail_with(exc, debug=debug) from None
    config = RunConfig(
        inputs=inputs, out=out, provider=provider, model=model, prompt=prompt, columns=columns,
        base_url=(base_url[0] if len(base_url) == 1 else base_url) if base_url else None, api_key_env=api_key_env, allow_insecure_http=allow_insecure_http,
        transport=transport, concurrency=concurrency, rps=rps, rpm=rpm, tpm=tpm, min_rps=min_rps,
        max_retry_after=max_retry_after, max_total_tokens=max_total_tokens, max_cost=max_cost,
        max_retries=max_retries, timeout=timeout, limit=limit, retry_failed=retry_failed,
        overwrite=overwrite, allow_changed_inputs=allow_changed_inputs, temperature=temperature, max_tokens=max_tokens, seed=seed,
        samples=samples, response_format=response_format,  # type: ignore[arg-type]
        max_context_tokens=max_context_tokens, flush_rows=flush_rows,
        flush_seconds=flush_seconds, trace=trace, trace_sample=trace_sample,
        mode=mode, dedupe=dedupe,  # type: ignore[arg-type]
        engine=engine, address=address, workers=workers,  # type: ignore[arg-type]
        storage_options=storage_options,
    )
    import anyio

    from batchjudge.api import dry_run as count, event_loop_options
    from batchjudge.cli._progress import Money, ProgressView, print_summary
    from batchjudge.report.prices import load_prices

    try:
        price_table = load_prices(prices)
        if dry_run:
            from batchjudge.cli._dryrun import print_dry_run

            print_dry_run(out_console(), count(config), price_table)
            return
    except Exception as exc:  # noqa: BLE001 - one line (and exit code) for every error
        raise fail_with(exc, debug=debug) from None
    console = err_console
    money = Money.for_run(config, price_table)
    view = None if quiet else ProgressView(console, money, every=progress_every)
    signals: list[int] = []
    try:
        result = anyio.run(_run_until_signalled, config, view, signals, backend_options=event_loop_options())
    except KeyboardInterrupt:  # a second Ctrl-C, while the first one's stop was under way
        raise fail("interrupted; run the same command again to resume", 130) from None
    except Exception as exc:  # noqa: BLE001 - one line (and exit code) for every error
        raise fail_with(exc, debug=debug) from None
    finally:
        if view is not None:
            view.stop()
    print_summary(console, result, config, money, show_warnings=view is None)
    if signals and not result.complete:
        name = signal.Signals(signals[0]).name
        raise fail(f"stopped by {name}: every reply received is written; run the same command again to resume",
                   128 + signals[0])
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add ``run`` to the CLI."""
    app.command("run")(run_command)
