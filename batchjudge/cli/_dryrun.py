"""What ``batchjudge run --dry-run`` prints: rows, calls, exact tokens, cost and time."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from batchjudge.cli._progress import dollars, duration
from batchjudge.engine.dryrun import DryRun
from batchjudge.report.prices import PriceTable, unbilled

__all__ = ["print_dry_run"]


def _cost(dry: DryRun, prices: PriceTable) -> str:
    reason = unbilled(dry.provider)
    if reason is not None:
        return f"none ({reason})"
    price = prices.price(dry.model)
    if price is None:
        return f"unknown: no price for {dry.model} (give one with --prices FILE)"
    online = dry.cost(price.cost)
    batch = dry.cost(lambda p, c: price.cost(p, c, batch=True))
    return (f"online {dollars(online[0])} (at most {dollars(online[1])}) · batch API "
            f"{dollars(batch[0])} (at most {dollars(batch[1])}) — at ${price.input:g} / ${price.output:g} "
            "per million prompt / completion tokens")  # fmt: skip


def _time(dry: DryRun) -> str:
    if dry.mode == "batch":
        return "batch jobs run outside the rate limits; each finishes within 24 h"
    seconds = dry.seconds
    if seconds is None and dry.provider == "local":
        return "as fast as this machine's CPU judges (no limit set)"
    if seconds is None:
        return "unknown without --rps/--tpm (the server's limits are not known before it answers)"
    bounds = [f"--rps {dry.rps:g}" if dry.rps else "", f"--tpm {dry.tpm:,.0f}" if dry.tpm else ""]
    return f"at least {duration(seconds)} at {' and '.join(b for b in bounds if b)}"


def print_dry_run(console: Console, dry: DryRun, prices: PriceTable) -> None:
    """Render ``dry`` for people; every figure is exact except the completion tokens."""
    expected, most = dry.completion_tokens
    skipped = [f"{dry.done:,} already have results" if dry.done else "",
               f"{dry.in_batch_jobs:,} in running batch jobs" if dry.in_batch_jobs else ""]  # fmt: skip
    calls = [f"{dry.reused:,} rows reuse an identical request's answer" if dry.reused else "",
             f"{dry.failing:,} rows fail before any call" if dry.failing else ""]  # fmt: skip
    lines = [
        f"dry run of {escape(dry.run_dir)}: nothing sent, nothing written",
        f"  rows    {dry.to_judge:,} of {dry.total:,} to judge"
        + "".join(f"; {s}" for s in skipped if s),
        f"  calls   {dry.requests:,} to {escape(dry.provider)} {escape(dry.model)}"
        + "".join(f"; {s}" for s in calls if s),
        f"  tokens  {dry.prompt_tokens:,} prompt tokens (exact, {dry.tokenizer} tokenizer); completion "
        f"about {expected:,}, at most {most:,} (--max-tokens {dry.max_tokens})",
        f"  cost    {_cost(dry, prices)}",
        f"  time    {_time(dry)}",
    ]
    if dry.provider in ("local", "mock"):
        # The run itself does not tokenize for a judge nothing bills: it records prompt tokens
        # estimated at 4 characters each and the answer's length / 4 (about 20 a row).
        lines.append("  note    these are the counts an API judge would be billed for; a local run bills "
                     "nothing and records tokens estimated at 4 characters each (prompt and answer), "
                     "so its token figures differ")
    if dry.truncated_rows:
        lines.append(f"  note    {dry.truncated_rows:,} documents will be cut to fit the context")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
    for warning in dry.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
