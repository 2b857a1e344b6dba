"""Judge quality: metrics, a run's report (terminal, JSON, HTML) and run comparisons.

Typical use::

    from batchjudge.report import load_run, load_prices, summarize, render_html
    run = load_run("runs/fib-7b")
    summary = summarize(run, load_prices(None))      # one JSON-able dict
    Path("report.html").write_text(render_html(run, summary))
    write_rows(load_run("runs/fib-7b", raw_response=True), "rows.parquet")  # joined with inputs
    disagreements(load_run("runs/a"), load_run("runs/b")).rows       # where two judges differ

The names below load from their modules on first use (PEP 562, as ``batchjudge`` itself does),
so ``batchjudge.report.prices`` — what ``batchjudge run`` needs for its live cost — comes without
polars, the HTML renderer and the comparisons.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchjudge.report.compare import McNemar, compare_runs, mcnemar, paired_test
    from batchjudge.report.diff import Disagreements, disagreements, write_disagreements
    from batchjudge.report.html import render_compare_html, render_html
    from batchjudge.report.loading import RunData, load_run
    from batchjudge.report.prices import DEFAULT_PRICES, Price, PriceTable, load_prices
    from batchjudge.report.rows import JoinedRows, write_rows
    from batchjudge.report.summary import summarize, worst_mistakes

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("McNemar", "compare_runs", "mcnemar", "paired_test"), "batchjudge.report.compare"),
    **dict.fromkeys(("Disagreements", "disagreements", "write_disagreements"), "batchjudge.report.diff"),
    **dict.fromkeys(("render_compare_html", "render_html"), "batchjudge.report.html"),
    **dict.fromkeys(("RunData", "load_run"), "batchjudge.report.loading"),
    **dict.fromkeys(("DEFAULT_PRICES", "Price", "PriceTable", "load_prices"), "batchjudge.report.prices"),
    **dict.fromkeys(("JoinedRows", "write_rows"), "batchjudge.report.rows"),
    **dict.fromkeys(("summarize", "worst_mistakes"), "batchjudge.report.summary"),
}

__all__ = [
    "DEFAULT_PRICES",
    "Disagreements",
    "JoinedRows",
    "McNemar",
    "Price",
    "PriceTable",
    "RunData",
    "compare_runs",
    "disagreements",
    "load_prices",
    "load_run",
    "mcnemar",
    "paired_test",
    "render_compare_html",
    "render_html",
    "summarize",
    "worst_mistakes",
    "write_disagreements",
    "write_rows",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batchjudge.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
