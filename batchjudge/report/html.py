"""The report as one self-contained HTML page: inline CSS, SVG and script, no network.

It shows the headline metrics with their intervals, the confusion matrix, ROC and
precision–recall curves, the latency histogram, the threshold table, failures by kind, the
judge's most confident mistakes with its reasons — the rows worth reading first — and a
table of every row to filter, sort and open (:mod:`batchjudge.report.html_rows`). A partial
(interrupted) run says so at the top.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from batchjudge.report.formatting import cost_text, number, quality_rows, rows_of_total, served_by
from batchjudge.report.html_rows import ROWS_CSS, rows_section
from batchjudge.report.loading import RunData, input_texts
from batchjudge.core.metrics import pr_curve, roc_curve
from batchjudge.report.summary import scored_rows, worst_mistakes

__all__ = ["render_compare_html", "render_html"]

_W, _H, _PAD = 360, 300, 44
_COLORS = ("#2563eb", "#dc2626", "#059669")
_MAX_POINTS = 400

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1120px;color:#111827;background:#fff;line-height:1.4}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#6b7280;font-size:13px} .cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:130px}
.card b{display:block;font-size:22px} .card span{color:#6b7280;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start} figure{margin:0} figcaption{font-size:13px;color:#374151}
table{border-collapse:collapse;font-size:13px} td,th{border-bottom:1px solid #e5e7eb;
padding:4px 10px;text-align:left;vertical-align:top} th{background:#f9fafb}
td.num{text-align:right;font-variant-numeric:tabular-nums} .reason{max-width:620px}
.note{font-size:12px;color:#6b7280}
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: Any, digits: int = 3) -> str:
    return _esc(number(value, digits))


def _thin(xs: NDArray[np.float64], ys: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if xs.size <= _MAX_POINTS:
        return xs, ys
    keep = np.unique(np.r_[np.linspace(0, xs.size - 1, _MAX_POINTS).astype(int), xs.size - 1])
    return xs[keep], ys[keep]


def _axes(x_label: str, y_label: str, x_max: float = 1.0, y_max: float = 1.0) -> list[str]:
    """The frame, ticks and labels of a plot whose data area is [0, x_max] × [0, y_max]."""
    right, bottom = _W - 12, _H - _PAD
    parts = [
        (
            f'<rect x="{_PAD}" y="12" width="{right - _PAD}" height="{bottom - 12}" '
            'fill="#fff" stroke="#9ca3af"/>'
        )
    ]
    for i in range(6):
        f = i / 5
        x = _PAD + f * (right - _PAD)
        y = bottom - f * (bottom - 12)
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#6b7280"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" font-size="10" text-anchor="middle">'
            f"{_tick(f * x_max, x_max)}</text>"
        )
        parts.append(f'<line x1="{_PAD - 4}" y1="{y:.1f}" x2="{_PAD}" y2="{y:.1f}" stroke="#6b7280"/>')
        parts.append(
            f'<text x="{_PAD - 6}" y="{y + 3:.1f}" font-size="10" text-anchor="end">'
            f"{_tick(f * y_max, y_max)}</text>"
        )
    parts.append(
        f'<text x="{(_PAD + right) / 2}" y="{_H - 6}" font-size="12" text-anchor="middle">'
        f"{_esc(x_label)}</text>"
    )
    parts.append(
        f'<text x="12" y="{(12 + bottom) / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {(12 + bottom) / 2})">{_esc(y_label)}</text>'
    )
    return parts


def _tick(value: float, axis_max: float) -> str:
    return f"{value:.1f}" if axis_max <= 1 else f"{value:,.0f}"


def _point(x: float, y: float, x_max: float = 1.0, y_max: float = 1.0) -> tuple[float, float]:
    right, bottom = _W - 12, _H - _PAD
    return (_PAD + x / x_max * (right - _PAD), bottom - y / y_max * (bottom - 12))


def _svg(body: Sequence[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{_esc(label)}">' + "".join(body) + "</svg>"
    )


def _line_chart(
    series: Sequence[tuple[str, NDArray[np.float64], NDArray[np.float64]]],
    x_label: str,
    y_label: str,
    *,
    diagonal: bool,
) -> str:
    body = _axes(x_label, y_label)
    if diagonal:
        (x0, y0), (x1, y1) = _point(0, 0), _point(1, 1)
        body.append(
            f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#d1d5db" stroke-dasharray="4 4"/>'
        )
    for i, (name, xs, ys) in enumerate(series):
        xs, ys = _thin(xs, ys)
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in (_point(x, y) for x, y in zip(xs, ys, strict=True)))
        color = _COLORS[i % len(_COLORS)]
        body.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        body.append(
            f'<text x="{_W - 20}" y="{_H - _PAD - 12 - 14 * i}" font-size="11" '
            f'text-anchor="end" fill="{color}">{_esc(name)}</text>'
        )
    return _svg(body, y_label + " vs " + x_label)


def _confusion_svg(matrix: list[list[int]]) -> str:
    size, left, top = 110, 120, 40
    peak = max(max(row) for row in matrix) or 1
    names = ("inconsistent", "consistent")
    body = [
        f'<text x="{left + size}" y="16" font-size="12" text-anchor="middle">judged</text>',
        (
            f'<text x="14" y="{top + size}" font-size="12" text-anchor="middle" '
            f'transform="rotate(-90 14 {top + size})">true</text>'
        ),
    ]
    for j, name in enumerate(names):
        body.append(f'<text x="{left + size * j + size / 2}" y="{top - 8}" font-size="11" '
                    f'text-anchor="middle">{name}</text>')  # fmt: skip
    for i, name in enumerate(names):
        body.append(f'<text x="{left - 8}" y="{top + size * i + size / 2 + 4}" font-size="11" '
                    f'text-anchor="end">{name}</text>')  # fmt: skip
        for j in range(2):
            value = matrix[i][j]
            share = value / peak
            fill = f"rgba(37,99,235,{0.08 + 0.8 * share:.2f})" if i == j else f"rgba(220,38,38,{0.08 + 0.8 * share:.2f})"
            text_color = "#fff" if share > 0.55 else "#111827"
            x, y = left + size * j, top + size * i
            body.append(f'<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="{fill}" stroke="#fff"/>')
            body.append(f'<text x="{x + size / 2}" y="{y + size / 2 + 7}" font-size="22" '
                        f'text-anchor="middle" fill="{text_color}">{value:,}</text>')  # fmt: skip
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + 2 * size + 10}" '
        f'height="{top + 2 * size + 10}" role="img" aria-label="confusion matrix">'
        + "".join(body) + "</svg>"
    )  # fmt: skip


def _histogram_svg(latency_ms: NDArray[np.float64]) -> str:
    values = latency_ms[np.isfinite(latency_ms)]
    if values.size == 0:
        return '<p class="note">No latencies recorded.</p>'
    high = float(np.percentile(values, 99.5)) or float(values.max()) or 1.0
    counts, edges = np.histogram(np.clip(values, 0, high), bins=30, range=(0, high))
    top = int(counts.max()) or 1
    body = _axes("latency (ms)", "rows", x_max=high, y_max=top)
    for count, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        x0, y0 = _point(lo, count, high, top)
        x1, y1 = _point(hi, 0, high, top)
        body.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                    f'height="{y1 - y0:.1f}" fill="#6366f1"/>')  # fmt: skip
    return _svg(body, "latency histogram")


def _pair_cell(pair: tuple[str, str] | None) -> str:
    """The summary in full and the document folded away (it can be pages long)."""
    if pair is None:
        return "–"
    premise, hypothesis = pair
    return (f'<div class="reason"><b>{_esc(hypothesis)}</b><details><summary>document '
            f"({len(premise):,} characters)</summary>{_esc(premise)}</details></div>")  # fmt: skip


def _cards(summary: dict[str, Any]) -> str:
    intervals = summary.get("intervals") or {}
    cards = [("rows", rows_of_total(summary), None), ("ok", summary["n_ok"], None),
             ("parse errors", summary["n_parse_error"], None), ("failed", summary["n_failed"], None)]  # fmt: skip
    f1 = summary.get("f1") or {}
    cards += [
        ("accuracy", summary.get("accuracy"), intervals.get("accuracy")),
        ("balanced accuracy", summary.get("balanced_accuracy"), intervals.get("balanced_accuracy")),
        ("F1 inconsistent", f1.get("inconsistent"), intervals.get("f1_inconsistent")),
        ("ROC-AUC", summary.get("roc_auc"), intervals.get("roc_auc")),
    ]
    if summary.get("pairwise_accuracy") is not None:
        cards.append(("pairwise accuracy", summary["pairwise_accuracy"], intervals.get("pairwise_accuracy")))
    cards.append(("cost (USD)", cost_text(summary), None))
    out = []
    for name, value, interval in cards:
        ci = f"<span>95% CI {interval[0]:.3f}–{interval[1]:.3f}</span>" if interval else ""
        out.append(f'<div class="card"><span>{_esc(name)}</span><b>{_fmt(value)}</b>{ci}</div>')
    return '<div class="cards">' + "".join(out) + "</div>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{cell}</td>' if numeric[i] else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _quality_table(summary: dict[str, Any]) -> str:
    rows = []
    for metric in ("precision", "recall", "f1"):
        values = summary.get(metric) or {}
        rows.append([metric, _fmt(values.get("consistent")), _fmt(values.get("inconsistent"))])
    pr = summary.get("pr_auc") or {}
    rows.append(["PR-AUC (average precision)", _fmt(pr.get("consistent")), _fmt(pr.get("inconsistent"))])
    table = _table(["metric", "consistent positive", "inconsistent positive"], rows, [False, True, True])
    if summary.get("brier") is None:
        return table
    return table + (f"<p class='note'>Brier score {_fmt(summary['brier'])} · "
                    f"calibration error (ECE, 10 bins) {_fmt(summary['ece'])}</p>")  # fmt: skip


def render_html(
    run: RunData, summary: dict[str, Any], *, mistakes: int = 25, table_rows: int = 100_000
) -> str:
    """The whole page for ``run`` (``summary`` is :func:`summarize`'s output for it), with
    at most ``table_rows`` rows in its table of every row."""
    sections: list[str] = []
    title = f"batchjudge report — {run.label}"
    who = served_by(summary)
    meta = " · ".join(
        ([_esc(who)] if who else [])
        + [f"{k}: {_esc(summary[k])}" for k in ("model", "prompt", "created_at") if summary.get(k)]
    )
    sections.append(f"<h1>{_esc(title)}</h1><div class='meta'>{_esc(summary['run_dir'])}"
                    f"{' · ' + meta if meta else ''}</div>")  # fmt: skip
    if summary.get("partial"):
        sections.append(f"<p class='partial'>Partial run: {_esc(rows_of_total(summary))} rows have "
                        "results (interrupted; the same run command resumes it). Every figure "
                        "below covers these rows only.</p>")  # fmt: skip
    sections.append(_cards(summary))

    scored = scored_rows(run.results)
    if summary.get("confusion_matrix"):
        figures = [
            "<figure>" + _confusion_svg(summary["confusion_matrix"]["matrix"])
            + "<figcaption>Confusion matrix (rows: true class, columns: judged)</figcaption></figure>"
        ]  # fmt: skip
        mask = scored.has_score
        if mask.any():
            target, score = scored.target[mask], scored.score[mask]
            fpr, tpr = roc_curve(target, score)
            figures.append("<figure>" + _line_chart(
                [(f"AUC {_fmt(summary['roc_auc'])}", fpr, tpr)],
                "false positive rate", "true positive rate", diagonal=True,
            ) + "<figcaption>ROC, consistent as positive</figcaption></figure>")  # fmt: skip
            series = []
            for positive, name in ((0, "inconsistent"), (1, "consistent")):
                if np.any(target == positive):
                    recall, precision = pr_curve(target, score, positive)
                    series.append((f"{name} positive", recall, precision))
            figures.append("<figure>" + _line_chart(series, "recall", "precision", diagonal=False)
                           + "<figcaption>Precision–recall</figcaption></figure>")  # fmt: skip
            bins = summary["calibration"] or []
            figures.append("<figure>" + _line_chart(
                [(f"ECE {_fmt(summary['ece'])}", np.array([b["mean_score"] for b in bins]),
                  np.array([b["fraction_consistent"] for b in bins]))],
                "mean P(consistent) in bin", "fraction consistent", diagonal=True,
            ) + "<figcaption>Calibration (on the diagonal = calibrated)</figcaption></figure>")  # fmt: skip
        else:
            figures.append('<p class="note">The judge gave no scores: no ROC or PR curve.</p>')
        sections.append("<h2>Quality</h2>" + _quality_table(summary))
        sections.append(_pairwise_section(summary))
        sections.append('<div class="grid">' + "".join(figures) + "</div>")
    else:
        sections.append('<p class="note">No labelled ok rows: quality metrics need targets.</p>')

    if summary.get("inconsistent_at_thresholds"):
        rows = [[f"{r['threshold']:.2f}", _fmt(r["flagged"]), _fmt(r["precision"]), _fmt(r["recall"])]
                for r in summary["inconsistent_at_thresholds"]]  # fmt: skip
        sections.append("<h2>Flagging inconsistent when P(inconsistent) ≥ t</h2>"
                        + _table(["t", "flagged", "precision", "recall"], rows, [True] * 4))  # fmt: skip

    latency = summary["latency_ms"]
    tokens = summary["tokens"]
    sections.append(
        "<h2>Latency and usage</h2><div class='grid'><figure>"
        + _histogram_svg(run.results["latency_ms"].cast(float).fill_null(float("nan")).to_numpy())
        + f"<figcaption>Latency: p50 {_fmt(latency['p50'], 1)} ms · p95 {_fmt(latency['p95'], 1)} ms"
        f" · p99 {_fmt(latency['p99'], 1)} ms</figcaption></figure>"
        + _table(["", "value"], [
            ["prompt tokens", _fmt(tokens["prompt"])],
            ["completion tokens", _fmt(tokens["completion"])],
            ["documents cut to fit", _fmt(tokens["truncated_rows"])],
            ["retried rows", _fmt(summary["attempts"]["retried_rows"])],
        ], [False, True]) + "</div>"
    )  # fmt: skip
    if summary["failures"]:
        sections.append("<h2>Not ok, by kind</h2>" + _table(
            ["kind", "rows"], [[_esc(k), _fmt(v)] for k, v in summary["failures"].items()], [False, True]))  # fmt: skip

    wrong = worst_mistakes(run, mistakes)
    if wrong:
        texts = input_texts(run, [w["row_id"] for w in wrong])
        label = {1: "consistent", 0: "inconsistent"}
        rows = [[_esc(w["row_id"]), label.get(w["target"], "?"), label.get(w["verdict"], "?"),
                 _fmt(w["score"]), _pair_cell(texts.get(w["row_id"])),
                 f'<div class="reason">{_esc(w["reason"]) or "–"}</div>']
                for w in wrong]  # fmt: skip
        note = "" if texts else " The inputs named in run.json are not readable here, so no texts."
        sections.append(
            "<h2>Most confident mistakes</h2><p class='note'>Wrong verdicts, most confident first "
            f"(score furthest from 0.5); the judge's own reason beside each.{note}</p>"
            + _table(["row", "true", "judged", "P(consistent)", "summary and document", "reason"],
                     rows, [False, False, False, True, False, False])
        )  # fmt: skip
    sections.append(rows_section(run, max_rows=table_rows))
    sections.append(f"<p class='note'>{_esc(summary['positive_class'])}. "
                    f"Intervals: {_esc((summary.get('intervals') or {}).get('method', 'none'))}.</p>")  # fmt: skip
    return _page(title, sections)


def _pairwise_section(summary: dict[str, Any]) -> str:
    """Pairwise accuracy with how it was counted, and per kind of error when known."""
    pairwise = summary.get("pairwise")
    if not pairwise:
        return ""
    note = (f"<p class='note'>How often the consistent summary of a document scores above an "
            f"inconsistent one ({pairwise['pairs']:,} pairs in {pairwise['groups']:,} groups from "
            f"{_esc(pairwise['groups_from'])}, by {_esc(pairwise['compared_by'])}).</p>")  # fmt: skip
    rows = [[_esc(kind), _fmt(row["pairwise_accuracy"]), _fmt(row["pairs"])]
            for kind, row in pairwise["by_kind"].items()]  # fmt: skip
    table = _table(["kind of error", "pairwise accuracy", "pairs"], rows, [False, True, True]) if rows else ""
    return "<h2>Pairwise accuracy</h2>" + note + table


def _page(title: str, sections: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{_CSS}{ROWS_CSS}</style></head><body>"
        + "".join(sections) + "</body></html>\n"
    )  # fmt: skip


def render_compare_html(runs: Sequence[RunData], comparison: dict[str, Any]) -> str:
    """One page comparing ``runs`` (``comparison`` is :func:`compare_runs`' output for them):
    metrics side by side with intervals, the McNemar verdicts, and their ROC curves overlaid."""
    summaries: Sequence[dict[str, Any]] = comparison["runs"]
    names = [run.label for run in runs]
    sections = [f"<h1>batchjudge comparison — {_esc(' vs '.join(names))}</h1>"]
    verdicts = "".join(
        f"<li><b>{_esc(t['verdict'])}</b> <span class='note'>McNemar, {_esc(t['method'])}: only "
        f"{_esc(t['baseline'])} right on {t['only_baseline_right']:,} rows, only "
        f"{_esc(t['candidate'])} right on {t['only_candidate_right']:,}.</span></li>"
        for t in comparison["tests"]
    )
    sections.append(f"<h2>Is the difference real?</h2><ul>{verdicts}</ul>")
    headers = ["", *(f"{name} ({s.get('model') or '?'})" for name, s in zip(names, summaries, strict=True))]
    per_run = [quality_rows(s) for s in summaries]
    rows = [["rows ok / all", *(f"{s['n_ok']:,} / {s['n_rows']:,}" for s in summaries)]]
    for i, (metric, _, _) in enumerate(per_run[0]):
        rows.append([metric, *(_esc(f"{r[i][1]} {r[i][2]}".strip()) for r in per_run)])
    rows.append(["cost (USD)", *(_fmt(s["cost_usd"], 4) for s in summaries)])
    rows.append(["latency p95 (ms)", *(_fmt(s["latency_ms"]["p95"], 1) for s in summaries)])
    sections.append("<h2>Side by side</h2>" + _table(headers, rows, [False] + [True] * len(runs)))
    curves = []
    for name, run in zip(names, runs, strict=True):
        scored = scored_rows(run.results)
        mask = scored.has_score
        if mask.any() and np.unique(scored.target[mask]).size == 2:
            fpr, tpr = roc_curve(scored.target[mask], scored.score[mask])
            curves.append((name, fpr, tpr))
    if curves:
        sections.append("<h2>ROC, consistent as positive</h2>" + _line_chart(
            curves, "false positive rate", "true positive rate", diagonal=True))  # fmt: skip
    return _page("batchjudge comparison", sections)
