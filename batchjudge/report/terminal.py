"""Rich renderables for a report and a comparison (the CLI prints them; nothing here prints)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from batchjudge.report.formatting import cost_text, number, quality_rows, rows_of_total, served_by

__all__ = ["compare_renderable", "diff_renderable", "report_renderable"]


def report_renderable(summary: dict[str, Any]) -> RenderableType:
    """The terminal view of :func:`batchjudge.report.summarize`'s output."""
    parts: list[RenderableType] = []
    title = Text(f"{summary['run_dir']}", style="bold")
    who = served_by(summary)
    details = ([who] if who else []) + [f"{k} {summary[k]}" for k in ("model", "prompt") if summary.get(k)]
    if details:
        title.append("  " + " · ".join(details), style="dim")
    parts.append(title)
    if summary.get("partial"):
        parts.append(Text(f"partial run: {rows_of_total(summary)} rows have results "
                          "(interrupted; the same run command resumes it)", style="bold yellow"))  # fmt: skip

    counts = Table(title="Rows", title_justify="left", show_edge=False)
    for name in ("rows", "ok", "parse error", "failed", "labelled", "scored"):
        counts.add_column(name, justify="right")
    counts.add_row(rows_of_total(summary), *(number(summary[k]) for k in (
        "n_ok", "n_parse_error", "n_failed", "n_labelled", "n_scored")))  # fmt: skip
    parts.append(counts)

    if summary.get("accuracy") is not None:
        quality = Table(title="Quality (labelled ok rows)", title_justify="left", show_edge=False)
        quality.add_column("metric")
        quality.add_column("value", justify="right")
        quality.add_column("95% CI", justify="right", style="dim")
        for row in quality_rows(summary):
            quality.add_row(*row)
        parts.append(quality)
        matrix = summary["confusion_matrix"]["matrix"]
        confusion = Table(title="Confusion (rows true, columns judged)", title_justify="left")
        confusion.add_column("")
        confusion.add_column("judged inconsistent", justify="right")
        confusion.add_column("judged consistent", justify="right")
        confusion.add_row("inconsistent", number(matrix[0][0]), number(matrix[0][1]))
        confusion.add_row("consistent", number(matrix[1][0]), number(matrix[1][1]))
        parts.append(confusion)
    by_kind = (summary.get("pairwise") or {}).get("by_kind")
    if by_kind:
        parts.append(_pairwise_by_kind(summary))
    if summary.get("inconsistent_at_thresholds"):
        flags = Table(
            title="Flag inconsistent when P(inconsistent) ≥ t", title_justify="left",
            show_edge=False,
        )  # fmt: skip
        for name in ("t", "flagged", "precision", "recall"):
            flags.add_column(name, justify="right")
        for row in summary["inconsistent_at_thresholds"]:
            flags.add_row(number(row["threshold"], 2), number(row["flagged"]),
                          number(row["precision"]), number(row["recall"]))  # fmt: skip
        parts.append(flags)

    usage = Table(title="Usage", title_justify="left", show_edge=False)
    usage.add_column("")
    usage.add_column("value", justify="right")
    tokens = summary["tokens"]
    usage.add_row("prompt tokens", number(tokens["prompt"]))
    usage.add_row("completion tokens", number(tokens["completion"]))
    if tokens["truncated_rows"]:
        usage.add_row("documents cut to fit", f"{tokens['truncated_rows']:,} rows, "
                      f"{tokens['truncated_tokens']:,} tokens")  # fmt: skip
    usage.add_row("cost (USD)", cost_text(summary))
    if summary.get("n_reused"):
        usage.add_row("rows reusing an identical request's answer", number(summary["n_reused"]))
    latency = summary["latency_ms"]
    usage.add_row("latency p50 / p95 / p99 (ms)",
                  " / ".join(number(latency[k], 1) for k in ("p50", "p95", "p99")))  # fmt: skip
    usage.add_row("retried rows", number(summary["attempts"]["retried_rows"]))
    parts.append(usage)

    if summary["failures"]:
        failures = Table(title="Not ok, by kind", title_justify="left", show_edge=False)
        failures.add_column("kind")
        failures.add_column("rows", justify="right")
        for kind, n in summary["failures"].items():
            failures.add_row(kind, number(n))
        parts.append(failures)
    if summary.get("top_errors"):
        errors = Table(title="Most frequent errors of failed rows", title_justify="left", show_edge=False)
        errors.add_column("rows", justify="right")
        errors.add_column("error")
        for entry in summary["top_errors"]:
            errors.add_row(number(entry["rows"]), Text(str(entry["error"])))
        parts.append(errors)
    return Group(*parts)


def _pairwise_by_kind(summary: dict[str, Any]) -> Table:
    """Pairwise accuracy per kind of error (the ``kind`` of each pair's inconsistent row)."""
    pairwise = summary["pairwise"]
    table = Table(title=f"Pairwise accuracy by kind ({pairwise['pairs']:,} pairs in "
                        f"{pairwise['groups']:,} groups, by {pairwise['compared_by']})",
                  title_justify="left", show_edge=False)  # fmt: skip
    for name in ("kind", "pairwise accuracy", "pairs"):
        table.add_column(name, justify="left" if name == "kind" else "right")
    for kind, row in pairwise["by_kind"].items():
        table.add_row(kind, number(row["pairwise_accuracy"]), number(row["pairs"]))
    return table


def compare_renderable(comparison: dict[str, Any]) -> RenderableType:
    """Runs side by side (value and 95% interval) and the McNemar verdicts."""
    runs: Sequence[dict[str, Any]] = comparison["runs"]
    table = Table(title="Runs side by side", title_justify="left")
    table.add_column("")
    for run in runs:
        table.add_column(f"{run['run_dir']}\n{run.get('model') or ''}", justify="right")
    table.add_row("rows (ok / all)", *(f"{r['n_ok']:,} / {rows_of_total(r)}" for r in runs))
    names = [name for name, _, _ in quality_rows(runs[0])]
    per_run = [quality_rows(run) for run in runs]
    for i, name in enumerate(names):
        table.add_row(name, *(f"{rows[i][1]} {rows[i][2]}".strip() for rows in per_run))
    table.add_row("cost (USD)", *(number(r["cost_usd"], 4) for r in runs))
    table.add_row("latency p95 (ms)", *(number(r["latency_ms"]["p95"], 1) for r in runs))
    lines: list[RenderableType] = [table]
    for test in comparison["tests"]:
        style = "bold green" if test["significant"] else "yellow"
        lines.append(Text(f"McNemar ({test['method']}): {test['verdict']}", style=style))
        lines.append(Text(
            f"  shared rows {test['shared_rows']:,}; only {test['baseline']} right "
            f"{test['only_baseline_right']:,}; only {test['candidate']} right "
            f"{test['only_candidate_right']:,}", style="dim"))  # fmt: skip
    emulated = [run["run_dir"] for run in runs if run.get("emulator")]
    if emulated:
        lines.append(Text(
            f"note: {', '.join(emulated)} {'was' if len(emulated) == 1 else 'were'} answered by the emulator, "
            "which answers with the local judge: beside a local run of the same judge it agrees by "
            "construction, and says nothing about a hosted model", style="dim"))  # fmt: skip
    return Group(*lines)


_VERDICTS = {1: "consistent", 0: "inconsistent"}
_SUMMARY_CHARS = 100


def _judged(verdict: int | None, score: float | None, right: bool) -> str:
    label = _VERDICTS.get(verdict, "–") if verdict is not None else "–"
    shown = f"{label} {score:.2f}" if score is not None else label
    return shown + (" ✓" if right else "")


def diff_renderable(diff: dict[str, Any]) -> RenderableType:
    """One pair's disagreements (:meth:`~batchjudge.report.diff.Disagreements.as_dict`): each
    row's id over its summary, the true label, and each judge's verdict and score (✓ right)."""
    n, shown = diff["n_disagreements"], diff["rows"]
    title = (f"{diff['baseline']} vs {diff['candidate']}: {n:,} disagreement{'s' if n != 1 else ''} "
             f"among {diff['shared_ok']:,} rows both judged ok")  # fmt: skip
    if not shown:
        return Text(title, style="bold")
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("row and summary", ratio=1, min_width=16, overflow="fold")
    table.add_column("true", no_wrap=True)
    table.add_column(diff["baseline"], no_wrap=True)
    table.add_column(diff["candidate"], no_wrap=True)
    for row in shown:
        summary = row["hypothesis"] or ""
        if len(summary) > _SUMMARY_CHARS:
            summary = summary[: _SUMMARY_CHARS - 1] + "…"
        cell = Text(row["row_id"], style="bold")
        if summary:
            cell.append("\n" + summary, style="dim")
        table.add_row(
            cell, _VERDICTS.get(row["target"], "–") if row["target"] is not None else "–",
            _judged(row["baseline_verdict"], row["baseline_score"], row["right"] == "baseline"),
            _judged(row["candidate_verdict"], row["candidate_score"], row["right"] == "candidate"),
        )  # fmt: skip
    parts: list[RenderableType] = [table]
    if len(shown) < n:
        parts.append(Text(f"… {n - len(shown):,} more: --diff-limit N shows more, "
                          "--diff-out FILE writes them all", style="dim"))  # fmt: skip
    if not diff["texts_available"]:
        parts.append(Text("no summaries: the inputs named in run.json are not readable here",
                          style="dim"))  # fmt: skip
    return Group(*parts)
