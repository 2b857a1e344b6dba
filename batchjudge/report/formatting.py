"""How report figures are written as text, shared by the terminal and HTML views."""

from __future__ import annotations

from typing import Any

__all__ = ["CLASSES", "cost_text", "interval", "number", "quality_rows", "rows_of_total", "served_by"]

CLASSES = ("consistent", "inconsistent")


def number(value: Any, digits: int = 3) -> str:
    """A float to ``digits`` decimals, an int with thousands separators, ``–`` for missing."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def rows_of_total(summary: dict[str, Any]) -> str:
    """``1,200 of 5,000`` for a partial run, else just the rows with a result."""
    rows = number(summary["n_rows"])
    return f"{rows} of {number(summary['n_total'])}" if summary.get("partial") else rows


def cost_text(summary: dict[str, Any]) -> str:
    """``0.0123``, ``0.0062 (batch API, half price)``, ``none (emulator)`` or ``unknown price: M``."""
    if summary.get("billed") is False:
        return f"none ({summary.get('not_billed')})"
    cost = summary.get("cost_usd")
    if cost is None:
        return f"unknown price: {', '.join(summary.get('unpriced_models') or [])}"
    return f"{cost:.4f}" + (" (batch API, half price)" if summary.get("pricing") == "batch" else "")


def served_by(summary: dict[str, Any]) -> str | None:
    """``provider mistral via the emulator at 127.0.0.1:8000``: who answered, for titles."""
    provider = summary.get("provider")
    if not provider:
        return None
    host = summary.get("endpoint")
    where = f" at {host}" if host else ""
    if summary.get("emulator"):
        return f"provider {provider} via the emulator{where}"
    return f"provider {provider}{where}"


def interval(summary: dict[str, Any], key: str) -> str:
    """``[low, high]`` of the metric's 95% interval, or ``""`` when it has none."""
    pair = (summary.get("intervals") or {}).get(key)
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]" if pair else ""


def _absent(summary: dict[str, Any], *, needs_scores: bool = False, pairwise: bool = False) -> str | None:
    """Why a figure is missing, in a word or two, when the summary says (else ``None``)."""
    if not summary.get("n_labelled"):
        return "no labels"
    if not summary.get("n_scored"):
        return "no labelled ok rows"
    if needs_scores and not summary.get("n_with_score"):
        return "no scores"
    if pairwise:
        return "no pairs"
    return None


def _value(value: Any, summary: dict[str, Any], **needs: bool) -> str:
    """``number(value)``, or ``– (no scores)`` and the like when the figure is missing."""
    if value is not None:
        return number(value)
    reason = _absent(summary, **needs)
    return f"– ({reason})" if reason else number(None)


def quality_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, value, 95% interval) for every quality metric of a summary, in display order.

    A missing figure says why: ``– (no scores)`` (ROC-AUC, Brier, ECE and PR-AUC need the
    judge's scores, which an API judge answering a verdict does not give), ``– (no labels)``,
    ``– (no pairs)`` (pairwise accuracy needs a document judged against several summaries).
    """
    rows = [
        ("accuracy (ok rows)", _value(summary["accuracy"], summary), interval(summary, "accuracy")),
        ("accuracy (errors count wrong)", _value(summary["accuracy_all"], summary), ""),
        ("balanced accuracy", _value(summary["balanced_accuracy"], summary),
         interval(summary, "balanced_accuracy")),
    ]  # fmt: skip
    for cls in CLASSES:
        for metric in ("precision", "recall", "f1"):
            values = summary.get(metric) or {}
            ci = interval(summary, f"f1_{cls}") if metric == "f1" else ""
            rows.append((f"{metric} ({cls} positive)", _value(values.get(cls), summary), ci))
    rows.append(("ROC-AUC", _value(summary["roc_auc"], summary, needs_scores=True), interval(summary, "roc_auc")))
    rows.append(("pairwise accuracy (same document)",
                 _value(summary.get("pairwise_accuracy"), summary, pairwise=True),
                 interval(summary, "pairwise_accuracy")))
    rows.append(("Brier score (lower is better)", _value(summary["brier"], summary, needs_scores=True), ""))
    rows.append(("calibration error (ECE, 10 bins)", _value(summary["ece"], summary, needs_scores=True), ""))
    pr = summary.get("pr_auc") or {}
    for cls in CLASSES:
        rows.append((f"PR-AUC ({cls} positive)", _value(pr.get(cls), summary, needs_scores=True), ""))
    return rows
