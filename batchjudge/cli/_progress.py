"""What ``batchjudge run`` shows while it works and when it ends."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from batchjudge.cli._console import err_console
from batchjudge.engine.pipeline import RunResult
from batchjudge.engine.stats import RunStats

__all__ = ["ProgressView", "print_summary"]


class ProgressView:
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


def print_summary(console: Console, result: RunResult, *, show_warnings: bool) -> None:
    """The final summary of a run: counts, this session's figures, warnings, the resume hint."""
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
