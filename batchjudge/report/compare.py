"""Comparing judges: runs side by side and a paired McNemar test on their shared rows.

Two judges scored on the same rows are *paired* observations, so the question "is B really
better than A?" is answered by the rows where they disagree in correctness: ``b`` rows only A
got right, ``c`` rows only B got right. Under "equally accurate" each discordant row is a fair
coin, so McNemar's test is a binomial test on ``min(b, c)`` out of ``b + c``:

- exact two-sided binomial p-value when ``b + c < 25`` (the chi-square approximation is poor
  there);
- otherwise chi-square with one degree of freedom and Edwards' continuity correction,
  ``(|b − c| − 1)² / (b + c)``.

Rows enter the test only when both runs have them ``ok`` with the same non-null target
(joined on ``row_id``). With more than two runs, every run is tested against the first one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from batchjudge.core.results import STATUS_OK
from batchjudge.report.loading import RunData
from batchjudge.report.prices import PriceTable
from batchjudge.report.summary import summarize

__all__ = ["ALPHA", "McNemar", "compare_runs", "mcnemar", "paired_test"]

ALPHA = 0.05
_EXACT_BELOW = 25


@dataclass(frozen=True)
class McNemar:
    """A McNemar test on ``b`` (only the first right) and ``c`` (only the second right)."""

    b: int
    c: int
    statistic: float | None
    """The continuity-corrected chi-square, or ``None`` for the exact test."""
    p_value: float
    method: str

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def mcnemar(b: int, c: int) -> McNemar:
    """McNemar's test for the discordant counts ``b`` and ``c`` (see the module docstring)."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return McNemar(b, c, None, 1.0, "exact binomial")
    if n < _EXACT_BELOW:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return McNemar(b, c, None, min(1.0, 2 * tail), "exact binomial")
    statistic = (abs(b - c) - 1) ** 2 / n
    # Survival function of chi-square with 1 d.f.: P(X > x) = erfc(sqrt(x / 2)).
    return McNemar(b, c, statistic, math.erfc(math.sqrt(statistic / 2)), "chi-square, continuity corrected")


def paired_test(
    first: RunData, second: RunData, labels: tuple[str, str] | None = None
) -> dict[str, Any]:
    """The McNemar test of ``second`` against ``first`` on the rows they share, in words too.

    ``labels`` name the two runs in the verdict (default: their directory names).
    """
    name_a, name_b = labels or (first.label, second.label)
    columns = ["row_id", "target", "verdict"]
    ok = pl.col("status") == STATUS_OK
    left = first.results.filter(ok & pl.col("target").is_not_null()).select(columns)
    right = second.results.filter(ok & pl.col("target").is_not_null()).select(columns)
    joined = left.join(right, on="row_id", suffix="_b")
    conflicting = int((joined["target"] != joined["target_b"]).sum())
    joined = joined.filter(pl.col("target") == pl.col("target_b"))
    correct_a = joined["verdict"] == joined["target"]
    correct_b = joined["verdict_b"] == joined["target"]
    n = joined.height
    b = int((correct_a & ~correct_b).sum())
    c = int((~correct_a & correct_b).sum())
    test = mcnemar(b, c)
    acc_a = float(correct_a.sum()) / n if n else None
    acc_b = float(correct_b.sum()) / n if n else None
    return {
        "baseline": name_a,
        "candidate": name_b,
        "shared_rows": n,
        "conflicting_targets": conflicting,
        "accuracy_baseline": acc_a,
        "accuracy_candidate": acc_b,
        "only_baseline_right": b,
        "only_candidate_right": c,
        **{k: v for k, v in asdict(test).items() if k not in ("b", "c")},
        "significant": test.significant,
        "verdict": _in_words(name_a, name_b, n, acc_a, acc_b, test),
    }


def _in_words(
    a: str, b: str, n: int, acc_a: float | None, acc_b: float | None, test: McNemar
) -> str:
    if n == 0 or acc_a is None or acc_b is None:
        return f"{a} and {b} share no labelled ok rows: they cannot be compared."
    if test.b == test.c:
        return f"{a} and {b} are equally accurate on the {n} shared rows (p = {test.p_value:.3g})."
    better, worse = (b, a) if test.c > test.b else (a, b)
    diff = abs(acc_b - acc_a) * 100
    if test.significant:
        return (
            f"{better} is significantly more accurate than {worse} on the {n} shared rows "
            f"(+{diff:.1f} points, p = {test.p_value:.3g} < {ALPHA})."
        )
    return (
        f"No significant difference on the {n} shared rows: {better} is ahead by "
        f"{diff:.1f} points, but p = {test.p_value:.3g} ≥ {ALPHA} (could be chance)."
    )


def compare_runs(
    runs: Sequence[RunData], prices: PriceTable, *, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Each run's summary side by side, and each later run tested against the first."""
    if len(runs) < 2:
        raise ValueError("compare needs at least two runs")
    names = [run.label for run in runs]
    if len(set(names)) < len(names):  # same directory names: tell them apart by path
        names = [str(run.path) for run in runs]
    return {
        "runs": [summarize(run, prices, resamples=resamples, seed=seed) for run in runs],
        "tests": [
            paired_test(runs[0], run, (names[0], names[i])) for i, run in enumerate(runs[1:], 1)
        ],
    }
