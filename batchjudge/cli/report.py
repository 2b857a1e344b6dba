"""``batchjudge report`` and ``batchjudge compare``: load runs, compute, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from batchjudge.cli._console import fail
from batchjudge.cli._options import flag
from batchjudge.errors import BatchJudgeError
from batchjudge.report import (
    compare_runs,
    load_prices,
    load_run,
    render_compare_html,
    render_html,
    summarize,
)
from batchjudge.report.terminal import compare_renderable, report_renderable

__all__ = ["register"]

_PRICES = typer.Option(
    "--prices", help="JSON or TOML file of USD per million tokens by model, overriding the defaults."
)
_JSON = flag("json", "Print one JSON object instead of tables.")
_RESAMPLES = typer.Option("--resamples", min=100, help="Bootstrap resamples for the 95% intervals.")
_HTML = typer.Option("--html", help="Also write a self-contained HTML page here.")


def _emit_json(data: object) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())


def _write_page(path: Path, page: str) -> None:
    if not path.parent.is_dir():
        raise fail(f"{path}: cannot write the HTML page: folder {path.parent} does not exist")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise fail(f"{path}: cannot write the HTML page ({exc.strerror})") from None


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `batchjudge run`.")],
    as_json: Annotated[bool, _JSON] = False,
    html: Annotated[Path | None, _HTML] = None,
    prices: Annotated[Path | None, _PRICES] = None,
    resamples: Annotated[int, _RESAMPLES] = 1000,
) -> None:
    """Metrics of one run: counts, quality with 95% intervals, tokens, cost, latency, failures."""
    try:
        run = load_run(run_dir)
        summary = summarize(run, load_prices(prices), resamples=resamples)
        if html is not None:
            _write_page(html, render_html(run, summary))
    except BatchJudgeError as exc:
        raise fail(str(exc)) from None
    if as_json:
        _emit_json(summary)
        return
    console = Console()
    console.print(report_renderable(summary))
    if html is not None:
        console.print(f"HTML report: {html}", highlight=False)


def compare_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories; the first is the baseline.")],
    as_json: Annotated[bool, _JSON] = False,
    html: Annotated[Path | None, _HTML] = None,
    prices: Annotated[Path | None, _PRICES] = None,
    resamples: Annotated[int, _RESAMPLES] = 1000,
) -> None:
    """Runs side by side, and a paired McNemar test of each against the first on shared rows."""
    if len(run_dirs) < 2:
        raise fail("compare needs at least two run directories")
    try:
        runs = [load_run(path) for path in run_dirs]
        comparison = compare_runs(runs, load_prices(prices), resamples=resamples)
        if html is not None:
            _write_page(html, render_compare_html(runs, comparison))
    except BatchJudgeError as exc:
        raise fail(str(exc)) from None
    if as_json:
        _emit_json(comparison)
        return
    console = Console()
    console.print(compare_renderable(comparison))
    if html is not None:
        console.print(f"HTML comparison: {html}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``compare`` to the CLI."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
