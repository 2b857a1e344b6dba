"""Judge quality: metrics, a run's report (terminal, JSON, HTML) and run comparisons.

Typical use::

    from batchjudge.report import load_run, load_prices, summarize, render_html
    run = load_run("runs/fib-7b")
    summary = summarize(run, load_prices(None))      # one JSON-able dict
    Path("report.html").write_text(render_html(run, summary))
    write_rows(load_run("runs/fib-7b", raw_response=True), "rows.parquet")  # joined with inputs
    disagreements(load_run("runs/a"), load_run("runs/b")).rows       # where two judges differ
"""

from __future__ import annotations

from batchjudge.report.compare import McNemar, compare_runs, mcnemar, paired_test
from batchjudge.report.diff import Disagreements, disagreements, write_disagreements
from batchjudge.report.html import render_compare_html, render_html
from batchjudge.report.loading import RunData, load_run
from batchjudge.report.prices import DEFAULT_PRICES, Price, PriceTable, load_prices
from batchjudge.report.rows import JoinedRows, write_rows
from batchjudge.report.summary import summarize, worst_mistakes

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
