"""What ``batchjudge run`` shows while it works and when it ends.

While it works, :class:`ProgressView` renders the run's :class:`RunStats`:

- on a terminal, one live line fitted to the width: ``judging ━━━━━ 8,343/30,000 27.8% $1.23
  eta 3m02s 95.3 rows/s failed 4 429s 2``. Each field has a priority (:func:`line_fields`); when
  the line is too wide the least important fields go first and the bar takes what is left, so
  ``done/total`` is never cut (at 80 columns rich's own columns printed ``100/1…``).
- elsewhere (``nohup``, a CI log, a pipe), a plain ``key=value`` line every ``every`` seconds
  (:func:`plain_line`), greppable and never overwritten.

The pace in force (``stats.limits``: ``95/s flag, 500,000 tok/min server``) is one such field; a
new figure (an outage notice) is one more ``(priority, text)`` pair in :func:`line_fields` and
one more ``key=value`` in :func:`plain_line`. Money is this session's
tokens at the model's price (:class:`Money`): batch runs at the batch price; the local judge, a
mock provider and the emulator show none.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from batchjudge.cli._console import err_console
from batchjudge.engine.config import RunConfig
from batchjudge.engine.pipeline import RunResult
from batchjudge.engine.stats import RunStats
from batchjudge.engine.status import python_command, without_limit
from batchjudge.report.prices import Price, PriceTable, unbilled

__all__ = ["Money", "ProgressView", "duration", "fit_line", "line_fields", "plain_line", "print_summary"]

_BAR_MIN = 10
_BAR_MAX = 40


def duration(seconds: float) -> str:
    """``45s``, ``3m02s``, ``1h05m``, ``2d03h``: at most two units, never wider than 6."""
    s = max(0, int(seconds + 0.5))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def dollars(usd: float) -> str:
    """``$0.0123`` below a dollar, ``$12.34`` above."""
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"


@dataclass(frozen=True, slots=True)
class Money:
    """How the session's tokens are priced on screen."""

    price: Price | None
    """None: the model has no known price (nothing is shown rather than a wrong figure)."""
    batch: bool = False
    not_billed: str | None = None
    """Why nothing is billed (``local judge``, ``mock provider``), known before the run."""

    @classmethod
    def for_run(cls, config: RunConfig, prices: PriceTable) -> Money:
        """The money of a run of ``config`` (a provider object passed instead is not priced)."""
        return cls(prices.price(config.resolved_model), config.mode == "batch", unbilled(config.provider))

    def text(self, prompt_tokens: int, completion_tokens: int, *, emulator: bool) -> str | None:
        """``$1.23``, ``emulator`` (it said so: nothing billed), or None (nothing to show, or
        nothing billed yet)."""
        if emulator:
            return "emulator"
        if self.not_billed is not None or self.price is None or not prompt_tokens + completion_tokens:
            return None  # nothing to price yet: the first reply may still say "emulator"
        return dollars(self.price.cost(prompt_tokens, completion_tokens, batch=self.batch))

    def of(self, stats: RunStats) -> str | None:
        """:meth:`text` for a run's live counters."""
        return self.text(stats.prompt_tokens, stats.completion_tokens, emulator=stats.emulator)


def _eta(stats: RunStats) -> str:
    rate = stats.rows_per_second
    left = stats.total - stats.completed
    if left <= 0:
        return "0s"
    return duration(left / rate) if rate > 0 else "?"


def _tokens(n: int) -> str:
    """``950``, ``12.3k``, ``4.5M``, ``1.2G``."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _rate(rows_per_second: float) -> str:
    return f"{rows_per_second:.1f}" if rows_per_second < 100 else f"{rows_per_second:,.0f}"


def line_fields(stats: RunStats, money: Money) -> list[tuple[int, str]]:
    """The live line's fields in display order, each with its priority (0 is kept longest)."""
    total = max(stats.total, 1)
    fields = [(9, "judging"), (0, f"{stats.completed:,}/{stats.total:,}"),
              (1, f"{100 * stats.completed / total:.1f}%")]  # fmt: skip
    cost = money.of(stats)
    if cost is not None:
        fields.append((2, cost))
    fields.append((2, f"eta {_eta(stats)}"))
    fields.append((3, f"{_rate(stats.rows_per_second)} rows/s"))
    if stats.failed:
        fields.append((1, f"failed {stats.failed:,}"))
    note = _note(stats)
    if note:
        fields.append((1, note))
    if stats.limits:
        fields.append((4, stats.limits))
    if stats.rate_limited:
        fields.append((4, f"429s {stats.rate_limited:,}"))
    if stats.retries:
        fields.append((5, f"retries {stats.retries:,}"))
    if stats.reused:
        fields.append((6, f"reused {stats.reused:,}"))
    fields.append((7, f"tok {_tokens(stats.prompt_tokens + stats.completion_tokens)}"))
    return fields


def _note(stats: RunStats) -> str:
    """What the run is waiting for, when it is not judging: an outage, or stopping."""
    if stats.stopping:
        return f"stopping: waiting for {stats.in_flight} replies" if stats.in_flight else "stopping"
    if stats.outage:
        return "endpoint unreachable: sending paused, probing"
    return ""


def fit_line(fields: Iterable[tuple[int, str]], width: int, fraction: float | None = None) -> Text:
    """The fields that fit in ``width`` cells, least important dropped first, joined by
    spaces; with ``fraction``, a bar before the most important field takes the room left (when
    at least :data:`_BAR_MIN` cells)."""
    kept = list(fields)
    while len(kept) > 1 and cell_len(" ".join(t for _, t in kept)) > width:
        kept.remove(max(kept, key=lambda f: f[0]))
    texts = [t for _, t in kept]
    plain = " ".join(texts)
    room = width - cell_len(plain) - 1
    if fraction is None or room < _BAR_MIN:
        return Text(plain[:width], no_wrap=True)
    at = min(range(len(kept)), key=lambda i: kept[i][0])
    bar_width = min(room, _BAR_MAX)
    filled = round(bar_width * min(max(fraction, 0.0), 1.0))
    line = Text(" ".join(texts[:at]) + (" " if at else ""), no_wrap=True)
    line.append("━" * filled, style="green")
    line.append("━" * (bar_width - filled), style="grey23")
    line.append(" " + " ".join(texts[at:]))
    return line


def plain_line(stats: RunStats, money: Money) -> str:
    """One greppable progress line for logs: ``progress 8343/30000 27.8% rate=95.3/s ...``."""
    total = max(stats.total, 1)
    parts = [
        f"progress {stats.completed}/{stats.total} {100 * stats.completed / total:.1f}%",
        f"rate={stats.rows_per_second:.1f}/s", f"eta={_eta(stats)}", f"elapsed={duration(stats.elapsed)}",
        f"ok={stats.ok}", f"parse_error={stats.parse_error}", f"failed={stats.failed}",
        f"retries={stats.retries}", f"429s={stats.rate_limited}", f"reused={stats.reused}",
        f"tokens={stats.prompt_tokens + stats.completion_tokens}",
    ]  # fmt: skip
    cost = money.of(stats)
    if cost is not None:
        parts.append(f"cost={cost}")
    if stats.limits:
        parts.append(f'limits="{stats.limits}"')
    if stats.outage:
        parts.append(f'outage="{stats.outage}"')
    if stats.server_stalls:
        parts.append(f"server_stalls={stats.server_stalls}")
    if stats.stopping:
        parts.append("stopping=yes")
    return " ".join(parts)


class _Line:
    """The live line, fitted to whatever width rich renders it at."""

    def __init__(self, view: ProgressView) -> None:
        self.view = view

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        stats = self.view.stats
        if stats is not None:
            fraction = stats.completed / stats.total if stats.total else None
            yield fit_line(line_fields(stats, self.view.money), options.max_width, fraction)


class ProgressView:
    """The ``progress`` callback of a run: a live line on a terminal, else a plain line every
    ``every`` seconds (the first as soon as the run starts)."""

    def __init__(self, console: Console, money: Money, *, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.money = money
        self.every = every
        self.clock = clock
        self.stats: RunStats | None = None
        self._live = Live(_Line(self), console=console, auto_refresh=False, transient=False) \
            if console.is_terminal else None  # fmt: skip
        self._last: float | None = None

    def __call__(self, stats: RunStats) -> None:
        if self.stats is None:  # shown once the run has passed validation
            for warning in stats.warnings:
                self.console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
            if self._live is not None:
                self._live.start()
        self.stats = stats
        if self._live is not None:
            self._live.refresh()
            return
        now = self.clock()
        if self._last is None or now - self._last >= self.every:
            self._last = now
            self.console.print(plain_line(stats, self.money), highlight=False, markup=False, soft_wrap=True)

    def stop(self) -> None:
        """Leave the live line as it last was."""
        if self._live is not None and self._live.is_started:
            self._live.stop()


def tracing_line(counters: Mapping[str, int]) -> str:
    """The tracer's counters in words: ``100 rows traced, 0 dropped (queue full), 0 errors``."""
    line = f"{counters.get('sent', 0):,} rows traced"
    for key, words in (("dropped", "dropped (queue full)"), ("errors", "errors"), ("sampled_out", "left out by --trace-sample")):
        if counters.get(key) or key != "sampled_out":
            line += f", {counters.get(key, 0):,} {words}"
    return line


def print_summary(console: Console, result: RunResult, config: RunConfig, money: Money, *,
                  show_warnings: bool) -> None:
    """The final summary of a run: counts, this session's figures and money, warnings, and
    the commands that resume it or re-send its failed rows."""
    s = result.stats
    counts = result.counts
    rows = result.input_rows if result.limited and result.input_rows is not None else result.total
    cost = money.text(s["prompt_tokens"], s["completion_tokens"], emulator=s["emulator"])
    session = [
        f"{s['finished']:,} rows in {duration(s['elapsed_s'])}", f"{s['rows_per_second']:,.1f} rows/s",
        f"{s['prompt_tokens'] + s['completion_tokens']:,} tokens", f"{s['retries']:,} retries",
        f"{s['rate_limited']:,} rate-limited",
    ]  # fmt: skip
    if s["server_stalls"] and config.provider != "local":  # the local judge has no server to stall
        session.append(f"{s['server_stalls']:,} server stalls paced around")
    if s["reused"]:
        session.append(f"{s['reused']:,} rows reused an identical request's answer")
    if cost == "emulator":
        session.append("answered by the emulator: nothing billed")
    elif cost is not None:
        session.append(f"cost {cost}" + (" at batch prices" if money.batch else ""))
    console.print(
        f"[bold]{escape(result.run_dir)}[/]: {counts['done']:,} of {rows:,} rows have results — "
        f"ok {counts['ok']:,}, parse_error {counts['parse_error']:,}, failed {counts['failed']:,} "
        f"(this session: {', '.join(session)})",
        highlight=False, soft_wrap=True,
    )
    if show_warnings:  # otherwise the progress view showed them before the run began
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if result.trace is not None:
        console.print(f"tracing: {tracing_line(result.trace)}", highlight=False)
    if counts["failed"]:
        from batchjudge.report.failures import run_top_errors

        for entry in run_top_errors(result.run_dir):
            console.print(f"  failed {entry['rows']:,}: {escape(str(entry['error']))}", highlight=False, soft_wrap=True)
    if result.error:
        err_console.print(f"[bold red]error:[/] {escape(result.error)}", highlight=False, soft_wrap=True)
    if config.from_memory:
        if not result.complete or result.limited:
            verb = "go on" if result.limited else "resume"
            console.print(f"{verb} from Python: {escape(python_command(result.run_dir, go_on=result.limited))}",
                          highlight=False, soft_wrap=True)
        return
    command = config.command_line()
    if not result.complete:
        console.print(f"resume: {escape(shlex.join(command))}", highlight=False, soft_wrap=True)
    elif result.limited:
        console.print(f"stopped at --limit: {counts['done']:,} of {result.input_rows:,} rows have results; "
                      f"go on: {escape(shlex.join(without_limit(command)))}", highlight=False, soft_wrap=True)
    elif counts["failed"]:
        console.print(f"re-send the {counts['failed']:,} failed rows: "
                      f"{escape(shlex.join([*command, '--retry-failed']))}", highlight=False, soft_wrap=True)  # fmt: skip
