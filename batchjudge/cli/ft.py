"""``batchjudge ft export|launch|status|start|cancel``: fine-tuning data and jobs.

Thin wrappers over :mod:`batchjudge.adapters.finetune` and :mod:`batchjudge.adapters.launchers`.
Exit codes: 0 done; 1 a job failed or was cancelled, or waiting timed out; 2 bad input,
options or API key (nothing sent); 3 the fine-tuning API refused (``410 Gone``, ``422``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.markup import escape
from rich.table import Table

from batchjudge.cli._console import err_console, fail, out_console
from batchjudge.cli._options import flag
from batchjudge.errors import (
    AuthError,
    BatchJudgeError,
    ConfigError,
    InputError,
    ProviderError,
)

__all__ = ["EXIT_REFUSED", "register"]

EXIT_REFUSED = 3
"""The fine-tuning API refused the job (410 Gone, 422)."""

ft_app = typer.Typer(name="ft", help="Export fine-tuning data and launch, follow or cancel fine-tuning jobs.",
                     no_args_is_help=True)
_err = err_console
T = TypeVar("T")

_LauncherOpt = Annotated[str, typer.Option("--launcher", help="local (train the local judge here) or mistral (hosted API, or the emulator with --base-url).")]
_BaseUrlOpt = Annotated[str | None, typer.Option(help="Mistral-compatible server for --launcher mistral (e.g. the emulator).")]
_JsonOpt = Annotated[bool, flag("json", "Print one JSON object instead of text.")]
_TraceOpt = Annotated[str | None, typer.Option(help="Trace the operation to weave:ENTITY/PROJECT or local:DIR.")]


def _error(message: str, code: int) -> typer.Exit:
    return fail(message, code)


def _call(action: Callable[[], Awaitable[T]]) -> T:
    """Run ``action`` on an event loop, mapping the project's errors to exit codes."""
    from batchjudge.adapters.launchers import FineTuningGone, JobRejected

    try:
        return anyio.run(action)
    except (FineTuningGone, JobRejected) as exc:
        raise _error(str(exc), EXIT_REFUSED) from None
    except (ConfigError, InputError, AuthError) as exc:
        raise _error(str(exc), 2) from None
    except ProviderError as exc:
        raise _error(str(exc), 1) from None


def _print_json(data: Any) -> None:
    out_console().print_json(json.dumps(data, default=str))


def _warn(lines: list[str]) -> None:
    for line in lines:
        _err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


@ft_app.command("export")
def export_command(
    inputs: Annotated[list[Path], typer.Argument(help="Dataset Parquet files/folders or cookbook JSONL/CSV files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Training JSONL to write.")],
    val: Annotated[Path | None, typer.Option("--val", help="Also write a validation JSONL, split by document.")] = None,
    val_size: Annotated[float, typer.Option(help="Share of documents held out for --val.")] = 0.1,
    prompt: Annotated[str, typer.Option(help="Prompt preset or template file; evaluate with the same one.")] = "zero-shot",
    model: Annotated[str, typer.Option(help="Base model: tokenizer, context and price.")] = "open-mistral-7b",
    mix: Annotated[str | None, typer.Option(help="Weights per input, e.g. 0.7,0.3: draw --rows rows in these shares.")] = None,
    rows: Annotated[int | None, typer.Option(help="Rows to draw with --mix (default: as many as the weights allow), else the first N.")] = None,
    balance: Annotated[bool, flag("balance", "Downsample to as many consistent as inconsistent rows.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for mixing, splitting and balancing.")] = 0,
    trace: _TraceOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Write Mistral fine-tuning JSONL with the evaluation's prompt; check it; summarise it."""
    from batchjudge.adapters.finetune import ExportOptions, export_finetune

    try:
        weights = None if mix is None else [float(w) for w in mix.split(",")]
    except ValueError:
        raise _error(f"--mix {mix!r}: expected comma-separated numbers, e.g. 0.7,0.3", 2) from None
    options = ExportOptions(prompt=prompt, model=model, val_size=val_size, mix=weights, rows=rows,
                            balance=balance, seed=seed)
    from batchjudge.adapters.tracing import trace_op

    try:
        inputs_traced = {"inputs": [str(p) for p in inputs], "out": str(out), "val": str(val), **asdict(options)}
        with trace_op(trace, "batchjudge.finetune.export", inputs_traced) as op:
            summary = export_finetune(inputs, out, val_out=val, options=options)
            op.output = asdict(summary)
    except BatchJudgeError as exc:
        raise _error(str(exc), 2) from None
    _warn(summary.notes)
    _warn(summary.warnings)
    if as_json:
        _print_json(asdict(summary))
        return
    table = Table("file", "rows", "documents", "consistent", "inconsistent", "tokens", "max/example", "cut docs")
    for part in (summary.train, summary.val):
        if part is not None:
            table.add_row(str(part.path), str(part.rows), str(part.documents), str(part.consistent),
                          str(part.inconsistent), str(part.tokens), str(part.max_example_tokens), str(part.truncated_rows))
    out_console().print(table)
    cost = summary.cost_per_epoch
    price = "no price known" if cost.usd_per_epoch is None else f"${cost.usd_per_epoch:.2f} per epoch"
    out_console().print(f"prompt {summary.prompt!r} (sha256 {summary.prompt_sha256[:12]}), {summary.model}: {price}; "
               f"evaluate with --prompt {prompt}", highlight=False)


def _spec(train: list[Path], val: Path | None, model: str, suffix: str | None, training_steps: int | None,
          learning_rate: float | None, epochs: float | None, wandb_project: str | None,
          auto_start: bool, seed: int, weights: str | None = None, force: bool = False) -> Any:
    from batchjudge.adapters.launchers import LaunchSpec

    try:
        parsed = None if weights is None else tuple(float(w) for w in weights.split(","))
    except ValueError:
        raise _error(f"--weights {weights!r}: expected comma-separated numbers, e.g. 1,0.5", 2) from None
    try:
        return LaunchSpec(train[0], val, model, suffix, training_steps, learning_rate, epochs, wandb_project,
                          auto_start, seed, more_train_files=tuple(train[1:]), train_weights=parsed, force=force)
    except ConfigError as exc:
        raise _error(str(exc), 2) from None


def _show_job(job: Any, as_json: bool, base_url: str | None, train: list[Path] | None = None) -> None:
    """The job's line and, once it has a model, the ``batchjudge run`` that evaluates it with
    the flags this command used (its server, and the prompt the training files were made with)."""
    if as_json:
        _print_json(asdict(job))
        return
    out_console().print(escape(job.line()), highlight=False)
    heldout = job.details.get("heldout") if isinstance(job.details, dict) else None
    if heldout:
        table = Table(title=f"held out: {heldout['rows']} rows ({heldout['split']})", title_justify="left")
        table.add_column("")
        table.add_column(f"before ({heldout['starting_point']})", justify="right")
        table.add_column("after (fine-tuned)", justify="right")
        twins = heldout.get("twins", {})
        rows = [(key, heldout["before"].get(key), heldout["after"].get(key))
                for key in ("accuracy", "roc_auc", "log_loss", "pairwise")]
        rows += [(f"pairwise on twins: {kind}", twins["before"].get(kind), twins["after"].get(kind))
                 for kind in twins.get("before", {})]  # fmt: skip
        for key, before, after in rows:
            table.add_row(key, "–" if before is None else f"{before:.3f}", "–" if after is None else f"{after:.3f}")
        out_console().print(table)
    if job.fine_tuned_model and job.status == "SUCCESS":
        import shlex

        from batchjudge.adapters.finetune import training_preset

        local = job.launcher == "local"
        flags = ["--provider", "local" if local else "mistral"]
        flags += ["--base-url", base_url] if base_url and not local else []
        flags += ["--model", job.fine_tuned_model]
        presets = {training_preset(t) for t in train or []}
        preset = presets.pop() if len(presets) == 1 else None  # files made with one known preset
        flags += ["--prompt", preset] if preset else []
        out_console().print(f"evaluate it: batchjudge run DATA --out RUN_DIR {escape(shlex.join(flags))}",
                   highlight=False, soft_wrap=True)


def _exit_for(job: Any) -> None:
    if job.status in ("FAILED", "FAILED_VALIDATION", "CANCELLED"):
        raise typer.Exit(1)


async def _follow(launcher: Any, job: Any, interval: float, timeout: float | None, quiet: bool) -> Any:
    from batchjudge.adapters.launchers import wait_for_job

    def progress(update: Any) -> None:
        if not quiet:
            _err.print(escape(update.line()), highlight=False)

    return await wait_for_job(launcher, job.id, interval=interval, timeout=timeout, on_update=progress)


@ft_app.command("launch")
def launch_command(
    train: Annotated[list[Path], typer.Argument(help="Training JSONL (from `batchjudge ft export`); several files are several sources.")],
    val: Annotated[Path | None, typer.Option("--val", help="Validation JSONL.")] = None,
    launcher: _LauncherOpt = "local",
    model: Annotated[str, typer.Option(help="Base model to fine-tune (mistral launcher).")] = "open-mistral-7b",
    suffix: Annotated[str | None, typer.Option(help="Name part of the fine-tuned model (ft:BASE:SUFFIX:ID).")] = None,
    training_steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Epochs over the training file.")] = None,
    wandb_project: Annotated[str | None, typer.Option(help="Report training to this W&B project (needs WANDB_API_KEY).")] = None,
    auto_start: Annotated[bool, flag("auto-start", "Start once validated.")] = True,
    seed: Annotated[int, typer.Option(help="Seed (local launcher).")] = 0,
    weights: Annotated[str | None, typer.Option(help="Mixing weight per training file, e.g. 1,0.5 (default: equal shares, however many rows each has).")] = None,
    force: Annotated[bool, flag("force", "Register the model even when it measures worse than its starting point (local launcher).")] = False,
    dry_run: Annotated[bool, flag("dry-run", "Check the files and estimate the cost; send nothing.")] = False,
    base_url: _BaseUrlOpt = None,
    wait: Annotated[bool, flag("wait", "Follow the job until it ends.")] = True,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 10.0,
    timeout: Annotated[float | None, typer.Option(help="Stop following after this many seconds.")] = None,
    trace: _TraceOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Launch a fine-tuning job on TRAIN and follow it; --dry-run only estimates.

    The local launcher fine-tunes the shipped judge, prints it and the result side by side on a
    held-out split, and refuses to register a result worse than its start unless --force.
    """
    from batchjudge.adapters.launchers import estimate

    spec = _spec(train, val, model, suffix, training_steps, learning_rate, epochs, wandb_project, auto_start, seed,
                 weights, force)
    if dry_run:
        try:
            found = estimate(spec, model="local-judge" if launcher == "local" else None)
        except BatchJudgeError as exc:
            raise _error(str(exc), 2) from None
        if as_json:
            _print_json(asdict(found))
            return
        cost = found.cost
        money = "no price known" if cost.usd_total is None else f"${cost.usd_total:.2f} (${cost.usd_per_epoch:.2f}/epoch)"
        out_console().print(f"dry run: {found.train_rows} training rows, {found.val_rows} validation rows, "
                   f"{cost.tokens_per_epoch} tokens/epoch x {cost.epochs:g} epoch(s) on {cost.model}: {money}; "
                   "nothing sent", highlight=False)
        return

    async def action() -> Any:
        runner = _launcher_for(launcher, base_url)
        try:
            job = await runner.launch(spec)
            if wait and not job.finished and auto_start:
                job = await _follow(runner, job, interval, timeout, as_json)
            return job
        finally:
            await runner.aclose()

    from batchjudge.adapters.tracing import trace_op

    try:
        with trace_op(trace, "batchjudge.finetune.launch", {"launcher": launcher, "base_url": base_url, **asdict(spec)}) as op:
            job = _call(action)
            op.output = asdict(job)
    except ConfigError as exc:  # a bad --trace target
        raise _error(str(exc), 2) from None
    _show_job(job, as_json, base_url, train)
    _exit_for(job)
    if wait and auto_start and not job.finished:
        raise typer.Exit(1)


def _launcher_for(launcher: str, base_url: str | None) -> Any:
    from batchjudge.adapters.launchers import make_launcher

    return make_launcher(launcher, **({} if launcher == "local" else {"base_url": base_url}))


@ft_app.command("status")
def status_command(
    job_id: Annotated[str, typer.Argument(help="The job id `ft launch` printed.")],
    launcher: _LauncherOpt = "local",
    base_url: _BaseUrlOpt = None,
    wait: Annotated[bool, flag("wait", "Follow the job until it ends.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --wait.")] = 10.0,
    timeout: Annotated[float | None, typer.Option(help="Stop following after this many seconds.")] = None,
    as_json: _JsonOpt = False,
) -> None:
    """Show a fine-tuning job; exit 1 when it failed or was cancelled."""

    async def action() -> Any:
        runner = _launcher_for(launcher, base_url)
        try:
            job = await runner.status(job_id)
            return await _follow(runner, job, interval, timeout, as_json) if wait and not job.finished else job
        finally:
            await runner.aclose()

    job = _call(action)
    _show_job(job, as_json, base_url)
    _exit_for(job)


def _job_command(verb: str) -> Callable[..., None]:
    def command(
        job_id: Annotated[str, typer.Argument(help="The job id `ft launch` printed.")],
        launcher: _LauncherOpt = "local",
        base_url: _BaseUrlOpt = None,
        as_json: _JsonOpt = False,
    ) -> None:
        async def action() -> Any:
            runner = _launcher_for(launcher, base_url)
            try:
                return await getattr(runner, verb)(job_id)
            finally:
                await runner.aclose()

        _show_job(_call(action), as_json, base_url)

    command.__doc__ = {"start": "Start a job created with --no-auto-start.",
                       "cancel": "Cancel a fine-tuning job (finished jobs stay as they are)."}[verb]
    return command


for _verb in ("start", "cancel"):
    ft_app.command(_verb)(_job_command(_verb))


def register(app: typer.Typer) -> None:
    """Add the ``ft`` command group to the CLI."""
    app.add_typer(ft_app)
