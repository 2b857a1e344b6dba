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


def quality_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, value, 95% interval) for every quality metric of a summary, in display order."""
    rows = [
        ("accuracy (ok rows)", number(summary["accuracy"]), interval(summary, "accuracy")),
        ("accuracy (errors count wrong)", number(summary["accuracy_all"]), ""),
        ("balanced accuracy", number(summary["balanced_accuracy"]),
         interval(summary, "balanced_accuracy")),
    ]  # fmt: skip
    for cls in CLASSES:
        for metric in ("precision", "recall", "f1"):
            values = summary.get(metric) or {}
            ci = interval(summary, f"f1_{cls}") if metric == "f1" else ""
            rows.append((f"{metric} ({cls} positive)", number(values.get(cls)), ci))
    rows.append(("ROC-AUC", number(summary["roc_auc"]), interval(summary, "roc_auc")))
    rows.append(("pairwise accuracy (same document)", number(summary.get("pairwise_accuracy")),
                 interval(summary, "pairwise_accuracy")))
    rows.append(("Brier score (lower is better)", number(summary["brier"]), ""))
    rows.append(("calibration error (ECE, 10 bins)", number(summary["ece"]), ""))
    pr = summary.get("pr_auc") or {}
    for cls in CLASSES:
        rows.append((f"PR-AUC ({cls} positive)", number(pr.get(cls)), ""))
    return rows
