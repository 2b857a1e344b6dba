"""``batchjudge report`` and ``batchjudge compare``: load runs, compute, render.

The report package (polars, pyarrow) is imported inside the commands, so that ``batchjudge
--help`` and the other commands do not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchjudge.cli._console import echo_json, err_console, fail, fail_with, out_console
from batchjudge.cli._options import STORAGE_OPTION, flag, use_storage_options
from batchjudge.errors import BatchJudgeError

__all__ = ["register"]

_PRICES = typer.Option(
    "--prices", help="JSON or TOML file of USD per million tokens by model, overriding the defaults."
)
_JSON = flag("json", "Print one JSON object instead of tables.")
_RESAMPLES = typer.Option("--resamples", min=100, help="Bootstrap resamples for the 95% intervals.")
_HTML = typer.Option("--html", help="Also write a self-contained HTML page here.")
_ROWS = typer.Option(
    "--rows", help="Also write every result joined with its input row (.parquet, .csv or .jsonl)."
)
_DIFF = flag("diff", "List the rows where the judges disagree (both ok, different verdicts).")
_DIFF_LIMIT = typer.Option("--diff-limit", min=0, help="Disagreements shown per pair with --diff.")
_DIFF_OUT = typer.Option(
    "--diff-out", help="Write every disagreement here (.parquet, .csv or .jsonl); implies --diff."
)


def _write_page(path: Path, page: str) -> None:
    if not path.parent.is_dir():
        raise fail(f"{path}: cannot write the HTML page: folder {path.parent} does not exist")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise fail(f"{path}: cannot write the HTML page ({exc.strerror})") from None


def report_command(
    run_dir: Annotated[str, typer.Argument(help="A run directory written by `batchjudge run` (a path or an s3:// URL).")],
    as_json: Annotated[bool, _JSON] = False,
    html: Annotated[Path | None, _HTML] = None,
    rows: Annotated[Path | None, _ROWS] = None,
    prices: Annotated[Path | None, _PRICES] = None,
    resamples: Annotated[int, _RESAMPLES] = 1000,
    storage_option: Annotated[list[str] | None, STORAGE_OPTION] = None,
) -> None:
    """Metrics of one run: counts, quality with 95% intervals, tokens, cost, latency, failures."""
    from batchjudge.report import load_prices, load_run, render_html, summarize
    from batchjudge.report.rows import table_file, write_rows
    from batchjudge.report.terminal import report_renderable

    written = 0
    try:
        use_storage_options(storage_option)
        if rows is not None:
            table_file(rows)  # a bad --rows path fails before the work
        run = load_run(run_dir, raw_response=rows is not None)
        summary = summarize(run, load_prices(prices), resamples=resamples)
        if html is not None:
            _write_page(html, render_html(run, summary))
        if rows is not None:
            written = write_rows(run, rows)
    except BatchJudgeError as exc:
        raise fail_with(exc) from None
    notes = err_console if as_json else out_console()  # stdout stays one JSON object
    if as_json:
        echo_json(summary)
    else:
        notes.print(report_renderable(summary))
    if html is not None:
        notes.print(f"HTML report: {html}", highlight=False, soft_wrap=True)
    if rows is not None:
        notes.print(f"rows: {written:,} written to {rows}", highlight=False, soft_wrap=True)


def compare_command(
    run_dirs: Annotated[list[str], typer.Argument(help="Two or more run directories (paths or s3:// URLs); the first is the baseline.")],
    as_json: Annotated[bool, _JSON] = False,
    html: Annotated[Path | None, _HTML] = None,
    diff: Annotated[bool, _DIFF] = False,
    diff_limit: Annotated[int, _DIFF_LIMIT] = 20,
    diff_out: Annotated[Path | None, _DIFF_OUT] = None,
    prices: Annotated[Path | None, _PRICES] = None,
    resamples: Annotated[int, _RESAMPLES] = 1000,
    storage_option: Annotated[list[str] | None, STORAGE_OPTION] = None,
) -> None:
    """Runs side by side, and a paired McNemar test of each against the first on shared rows."""
    if len(run_dirs) < 2:
        raise fail("compare needs at least two run directories")
    from batchjudge.report import compare_runs, load_prices, load_run, render_compare_html
    from batchjudge.report.diff import disagreements, write_disagreements
    from batchjudge.report.rows import table_file
    from batchjudge.report.terminal import compare_renderable, diff_renderable

    diff = diff or diff_out is not None
    written = 0
    try:
        use_storage_options(storage_option)
        if diff_out is not None:
            table_file(diff_out)  # a bad --diff-out path fails before the work
        runs = [load_run(path) for path in run_dirs]
        comparison = compare_runs(runs, load_prices(prices), resamples=resamples)
        if html is not None:
            _write_page(html, render_compare_html(runs, comparison))
        pairs = [
            disagreements(runs[0], run, (test["baseline"], test["candidate"]))
            for run, test in zip(runs[1:], comparison["tests"], strict=True)
        ] if diff else []  # fmt: skip
        if diff_out is not None:
            written = write_disagreements(pairs, diff_out)
    except BatchJudgeError as exc:
        raise fail_with(exc) from None
    if diff:
        comparison["diffs"] = [pair.as_dict(diff_limit) for pair in pairs]
    notes = err_console if as_json else out_console()  # stdout stays one JSON object
    if as_json:
        echo_json(comparison)
    else:
        notes.print(compare_renderable(comparison))
        for pair in comparison.get("diffs", []):
            notes.print(diff_renderable(pair))
    if html is not None:
        notes.print(f"HTML comparison: {html}", highlight=False, soft_wrap=True)
    if diff_out is not None:
        notes.print(f"disagreements: {written:,} written to {diff_out}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``compare`` to the CLI."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
