"""``batchjudge run``: parse the options, call :func:`batchjudge.run_async`, render progress.

The engine (pyarrow, polars, the HTTP client) and the progress view are imported inside the
command, so ``batchjudge --help`` and argument errors do not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from batchjudge.cli._console import fail, out_console
from batchjudge.cli._options import flag
from batchjudge.engine.config import RunConfig
from batchjudge.errors import BatchJudgeError

__all__ = ["register"]



def run_command(
    inputs: Annotated[list[str], typer.Argument(help="Parquet files, directories of shards or globs (JSONL/CSV too).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created, or resumed).")],
    provider: Annotated[str, typer.Option(help="Judge backend: local (offline), mistral, or openai (any OpenAI-compatible server: vLLM, llama.cpp, TGI, Ollama).")] = "local",
    model: Annotated[Optional[str], typer.Option(help="Model name (default per provider).")] = None,
    prompt: Annotated[str, typer.Option(help="Prompt preset (zero-shot, few-shot, ft) or template file.")] = "zero-shot",
    columns: Annotated[Optional[str], typer.Option(help="Column mapping, e.g. premise=doc,hypothesis=summary,target=label,id=uid.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="The server's URL (default: the provider's API; e.g. the emulator's).")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding the key (default MISTRAL_API_KEY, or OPENAI_API_KEY for openai).")] = None,
    transport: Annotated[Optional[str], typer.Option(help="mistral provider transport: http (lean) or sdk.")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at most.")] = 16,
    rps: Annotated[Optional[float], typer.Option(help="Requests per second, shared by all workers (default: learned from the server).")] = None,
    rpm: Annotated[Optional[float], typer.Option(help="Requests per minute (default: learned from the server).")] = None,
    tpm: Annotated[Optional[float], typer.Option(help="Tokens per minute (default: learned from the server).")] = None,
    max_retries: Annotated[int, typer.Option(help="Retries per row for 429/5xx/timeouts.")] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 60.0,
    limit: Annotated[Optional[int], typer.Option(help="Judge only the first N rows.")] = None,
    max_total_tokens: Annotated[Optional[int], typer.Option(help="Stop sending once the run has used this many tokens (resumable).")] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="Stop sending once the run has cost this many USD (resumable).")] = None,
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
    dedupe: Annotated[bool, flag("dedupe", "Send identical requests once and reuse the answer.")] = True,
    dry_run: Annotated[bool, flag("dry-run", "Count rows, calls and exact tokens, price them; send and write nothing.")] = False,
    prices: Annotated[Optional[Path], typer.Option(help="JSON or TOML prices (USD per million tokens by model) for --dry-run and the live cost.")] = None,
    progress_every: Annotated[float, typer.Option(min=0.1, help="Seconds between progress lines when stderr is not a terminal.")] = 10.0,
) -> None:
    """Judge every row of INPUT into RUN_DIR; the same command again resumes."""
    config = RunConfig(
        inputs=inputs, out=out, provider=provider, model=model, prompt=prompt, columns=columns,
        base_url=base_url, api_key_env=api_key_env, transport=transport, concurrency=concurrency,
        rps=rps, rpm=rpm, tpm=tpm, max_total_tokens=max_total_tokens, max_cost=max_cost,
        max_retries=max_retries, timeout=timeout, limit=limit, retry_failed=retry_failed,
        overwrite=overwrite, temperature=temperature, max_tokens=max_tokens, seed=seed,
        samples=samples, response_format=response_format,  # type: ignore[arg-type]
        max_context_tokens=max_context_tokens, flush_rows=flush_rows,
        flush_seconds=flush_seconds, trace=trace, trace_sample=trace_sample,
        mode=mode, dedupe=dedupe,  # type: ignore[arg-type]
    )
    import anyio
    from rich.console import Console

    from batchjudge.api import dry_run as count, event_loop_options, run_async
    from batchjudge.cli._progress import Money, ProgressView, print_summary
    from batchjudge.report.prices import load_prices

    try:
        price_table = load_prices(prices)
        if dry_run:
            from batchjudge.cli._dryrun import print_dry_run

            print_dry_run(out_console(), count(config), price_table)
            return
    except BatchJudgeError as exc:
        raise fail(str(exc)) from None
    console = Console(stderr=True)
    money = Money.for_run(config, price_table)
    view = None if quiet else ProgressView(console, money, every=progress_every)
    try:
        result = anyio.run(lambda: run_async(config, progress=view), backend_options=event_loop_options())
    except BatchJudgeError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; run the same command again to resume", 130) from None
    finally:
        if view is not None:
            view.stop()
    print_summary(console, result, config, money, show_warnings=view is None)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add ``run`` to the CLI."""
    app.command("run")(run_command)
