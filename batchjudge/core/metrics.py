"""Classification metrics for a binary consistency judge, in plain numpy.

Conventions (every function follows them):

- Labels: ``1`` = consistent, ``0`` = inconsistent (the cookbook's and FIB's).
- ``score`` is the judge's P(consistent), so it ranks *consistent* first.
- Per-class precision/recall/F1 are given for both classes; "positive" is always named.
  The cookbook's F1 took **consistent** as positive; a hallucination detector's natural
  positive is **inconsistent** — report both, never one unnamed.
- A ratio whose denominator is zero is *undefined* and returned as ``None`` (scikit-learn
  silently returns 0 there; callers comparing with it must skip those cases).
- ROC-AUC is the Mann–Whitney probability that a random consistent row outscores a random
  inconsistent one, ties counting one half (identical to the trapezoidal area under the ROC).
- Pairwise accuracy (FIB's own measure) is, over every (consistent, inconsistent) pair of
  summaries of one document, how often the consistent one scores higher, ties counting
  one half; a judge with verdicts only is scored by its verdicts.
- PR-AUC is *average precision* (scikit-learn's definition: the step-wise sum of
  precision × recall increments over distinct thresholds, tied scores forming one step), not
  the optimistic trapezoidal area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_THRESHOLDS",
    "BinaryCounts",
    "Interval",
    "Pairwise",
    "average_precision",
    "bootstrap_intervals",
    "brier_score",
    "calibration_bins",
    "confusion",
    "flag_inconsistent_at",
    "latency_percentiles",
    "pairwise_accuracy",
    "pr_curve",
    "roc_auc",
    "roc_curve",
]

CLASS_NAMES: dict[int, str] = {1: "consistent", 0: "inconsistent"}

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
"""Thresholds on P(inconsistent) for :func:`flag_inconsistent_at` (Eugene Yan's view)."""


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class BinaryCounts:
    """The confusion matrix of verdicts against targets.

    ``tp`` etc. take *consistent* as the positive class: ``tp`` = consistent judged
    consistent, ``fn`` = consistent judged inconsistent, ``fp`` = inconsistent judged
    consistent (a missed hallucination), ``tn`` = inconsistent judged inconsistent.
    """

    tp: int
    fn: int
    fp: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.fp + self.tn

    @property
    def matrix(self) -> list[list[int]]:
        """Rows = true class, columns = predicted class, both ordered (inconsistent, consistent)
        — scikit-learn's ``confusion_matrix(y, p, labels=[0, 1])`` layout."""
        return [[self.tn, self.fp], [self.fn, self.tp]]

    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.n)

    def precision(self, positive: int) -> float | None:
        """Of the rows judged ``positive``, the fraction truly ``positive``."""
        return _ratio(self.tp, self.tp + self.fp) if positive else _ratio(self.tn, self.tn + self.fn)

    def recall(self, positive: int) -> float | None:
        """Of the rows truly ``positive``, the fraction judged ``positive``."""
        return _ratio(self.tp, self.tp + self.fn) if positive else _ratio(self.tn, self.tn + self.fp)

    def f1(self, positive: int) -> float | None:
        return _f1(self.precision(positive), self.recall(positive))

    def balanced_accuracy(self) -> float | None:
        """Mean of the two classes' recalls; undefined unless both classes occur."""
        r1, r0 = self.recall(1), self.recall(0)
        return None if r1 is None or r0 is None else (r1 + r0) / 2

    def per_class(self) -> dict[str, dict[str, float | None]]:
        """``{"precision": {"consistent": .., "inconsistent": ..}, "recall": .., "f1": ..}``."""
        return {
            metric: {name: getattr(self, metric)(label) for label, name in CLASS_NAMES.items()}
            for metric in ("precision", "recall", "f1")
        }


def confusion(y_true: ArrayLike, y_pred: ArrayLike) -> BinaryCounts:
    """Count verdicts against targets (both arrays of 0/1, same length)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred differ in length")
    cells = np.bincount(t * 2 + p, minlength=4)  # 0:tn 1:fp 2:fn 3:tp
    return BinaryCounts(tp=int(cells[3]), fn=int(cells[2]), fp=int(cells[1]), tn=int(cells[0]))


def _levels(
    y_true: NDArray[np.int64], scores: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Distinct scores in decreasing order with the positive and negative count at each."""
    order = np.argsort(-scores)  # ties are grouped below, so no stable sort is needed
    s = scores[order]
    t = y_true[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(t, starts).astype(np.float64)
    total = np.diff(np.r_[starts, len(s)]).astype(np.float64)
    return s[starts], pos, total - pos


def roc_auc(y_true: ArrayLike, scores: ArrayLike, positive: int = 1) -> float | None:
    """Area under the ROC curve for ``positive`` (scores are P(consistent)); ties count ½.

    ``None`` when only one class is present.
    """
    t = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if positive == 0:
        t, s = 1 - t, -s
    _, pos, neg = _levels(t, s)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    neg_below = n_neg - np.cumsum(neg)  # negatives with a strictly lower score
    return float((pos * (neg_below + 0.5 * neg)).sum() / (n_pos * n_neg))


def roc_curve(
    y_true: ArrayLike, scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(false-positive rate, true-positive rate) for consistent as positive, from (0, 0)."""
    t = np.asarray(y_true, dtype=np.int64)
    _, pos, neg = _levels(t, np.asarray(scores, dtype=np.float64))
    tpr = np.r_[0.0, np.cumsum(pos)] / max(pos.sum(), 1.0)
    fpr = np.r_[0.0, np.cumsum(neg)] / max(neg.sum(), 1.0)
    return fpr, tpr


def pr_curve(
    y_true: ArrayLike, scores: ArrayLike, positive: int = 1
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(recall, precision) at each distinct threshold, ranking ``positive`` first."""
    t = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if positive == 0:
        t, s = 1 - t, -s
    _, pos, neg = _levels(t, s)
    tp = np.cumsum(pos)
    predicted = tp + np.cumsum(neg)
    recall = tp / max(pos.sum(), 1.0)
    precision = tp / predicted
    return recall, precision


def average_precision(y_true: ArrayLike, scores: ArrayLike, positive: int = 1) -> float | None:
    """PR-AUC as average precision for ``positive``; ``None`` when it never occurs."""
    t = np.asarray(y_true, dtype=np.int64)
    if not np.any(t == positive):
        return None
    recall, precision = pr_curve(t, scores, positive)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def flag_inconsistent_at(
    y_true: ArrayLike, scores: ArrayLike, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[dict[str, float | int | None]]:
    """Precision and recall of the *inconsistent* class when flagging at a confidence.

    A row is flagged inconsistent when P(inconsistent) = 1 − score ≥ ``t``; a higher ``t``
    flags fewer rows, more surely. Eugene Yan reads a hallucination detector this way: how
    many hallucinations it catches (recall) and how often a flag is right (precision) at a
    confidence the user can act on.
    """
    t = np.asarray(y_true, dtype=np.int64)
    p_inconsistent = 1.0 - np.asarray(scores, dtype=np.float64)
    negatives = int(np.sum(t == 0))
    rows: list[dict[str, float | int | None]] = []
    for threshold in thresholds:
        flagged = p_inconsistent >= threshold - 1e-12
        caught = int(np.sum(flagged & (t == 0)))
        rows.append(
            {
                "threshold": float(threshold),
                "flagged": int(flagged.sum()),
                "precision": _ratio(caught, int(flagged.sum())),
                "recall": _ratio(caught, negatives),
            }
        )
    return rows


def brier_score(y_true: ArrayLike, scores: ArrayLike) -> float | None:
    """Mean squared error of P(consistent) against the 0/1 target (0 is perfect, 0.25 is a
    constant ½); ``None`` for no rows."""
    t = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    return float(np.mean((s - t) ** 2)) if t.size else None


def calibration_bins(
    y_true: ArrayLike, scores: ArrayLike, bins: int = 10
) -> tuple[list[dict[str, float | int]], float | None]:
    """Reliability table and expected calibration error (ECE) of P(consistent).

    Scores fall in ``bins`` equal-width bins over [0, 1] (the last one closed); each non-empty
    bin gives its row count, mean score and observed fraction consistent. ECE is the
    row-weighted mean of ``|mean score − fraction consistent|``: a calibrated judge's score of
    0.8 is right 80% of the time, and its ECE is near 0.
    """
    t = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if t.size == 0:
        return [], None
    index = np.minimum((s * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    score_sums = np.bincount(index, weights=s, minlength=bins)
    positive_sums = np.bincount(index, weights=t, minlength=bins)
    table: list[dict[str, float | int]] = []
    gap = 0.0
    for b in np.flatnonzero(counts):
        mean_score, observed = score_sums[b] / counts[b], positive_sums[b] / counts[b]
        gap += counts[b] * abs(mean_score - observed)
        table.append({"low": b / bins, "high": (b + 1) / bins, "n": int(counts[b]),
                      "mean_score": float(mean_score), "fraction_consistent": float(observed)})  # fmt: skip
    return table, float(gap / t.size)


def latency_percentiles(latency_ms: ArrayLike) -> dict[str, float | None]:
    """p50/p95/p99 (linear interpolation) and mean of the finite latencies, in ms."""
    values = np.asarray(latency_ms, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(values.mean())}


@dataclass(frozen=True)
class Interval:
    """A percentile-bootstrap 95% interval."""

    low: float
    high: float


_AUC_MAX_LEVELS = 2_000
_AUC_CHUNK = 100


def bootstrap_intervals(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    scores: ArrayLike | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Interval | None]:
    """Percentile-bootstrap 95% intervals, resampling rows with replacement (seeded).

    Keys: ``accuracy``, ``balanced_accuracy``, ``f1_consistent``, ``f1_inconsistent`` and,
    with scores, ``roc_auc``. A value is ``None`` when the metric is undefined in too many
    resamples (more than 5%) to give an interval.

    Rows that share the same (target, verdict) — or, for ROC-AUC, the same (target, score) —
    are exchangeable, so resampling n rows is drawing the cell counts from a multinomial:
    exact, and fast at a million rows. For ROC-AUC with more than 2,000 distinct scores the
    cells use scores rounded to 3 decimals (the point estimate itself is never rounded).
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    n = t.size
    names = ["accuracy", "balanced_accuracy", "f1_consistent", "f1_inconsistent"]
    if scores is not None:
        names.append("roc_auc")
    if n == 0:
        return dict.fromkeys(names)
    rng = np.random.default_rng(seed)
    cells = np.bincount(t * 2 + p, minlength=4).astype(np.float64)
    draws = rng.multinomial(n, cells / n, size=resamples).astype(np.float64)
    tn, fp, fn, tp = draws.T
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = (tp + tn) / n
        r1, r0 = tp / (tp + fn), tn / (tn + fp)
        p1, p0 = tp / (tp + fp), tn / (tn + fn)
        f1_1 = np.where(p1 + r1 > 0, 2 * p1 * r1 / (p1 + r1), 0.0)
        f1_0 = np.where(p0 + r0 > 0, 2 * p0 * r0 / (p0 + r0), 0.0)
        f1_1 = np.where(np.isfinite(p1) & np.isfinite(r1), f1_1, np.nan)
        f1_0 = np.where(np.isfinite(p0) & np.isfinite(r0), f1_0, np.nan)
        samples = {
            "accuracy": acc,
            "balanced_accuracy": (r1 + r0) / 2,
            "f1_consistent": f1_1,
            "f1_inconsistent": f1_0,
        }
    if scores is not None:
        samples["roc_auc"] = _bootstrap_auc(t, np.asarray(scores, dtype=np.float64), rng, resamples)
    return {name: _percentile_interval(samples[name]) for name in names}


def _bootstrap_auc(
    t: NDArray[np.int64], s: NDArray[np.float64], rng: np.random.Generator, resamples: int
) -> NDArray[np.float64]:
    if np.unique(s).size > _AUC_MAX_LEVELS:
        s = np.round(s, 3)
    levels, pos, neg = _levels(t, s)
    k = levels.size
    counts = np.r_[pos, neg]
    n = int(counts.sum())
    result = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, _AUC_CHUNK):  # chunks keep memory at ~100 x cells
        size = min(_AUC_CHUNK, resamples - start)
        draws = rng.multinomial(n, counts / n, size=size).astype(np.float64)
        dpos, dneg = draws[:, :k], draws[:, k:]
        n_pos, n_neg = dpos.sum(axis=1), dneg.sum(axis=1)
        neg_below = n_neg[:, None] - np.cumsum(dneg, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            result[start : start + size] = (dpos * (neg_below + 0.5 * dneg)).sum(axis=1) / (
                n_pos * n_neg
            )
    return result


def _percentile_interval(values: NDArray[np.float64]) -> Interval | None:
    finite = values[np.isfinite(values)]
    if finite.size < 0.95 * values.size or finite.size == 0:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(float(low), float(high))


@dataclass(frozen=True)
class Pairwise:
    """Pairwise accuracy: its value, the pairs and groups it counts, a bootstrap interval
    (groups resampled) and the same figure per kind of the pairs' inconsistent member."""

    value: float | None
    pairs: int
    groups: int
    interval: Interval | None
    by_kind: dict[str, tuple[float, int]]
    """``{kind: (value, pairs)}`` when kinds were given."""


def pairwise_accuracy(
    groups: ArrayLike,
    y_true: ArrayLike,
    scores: ArrayLike,
    kinds: ArrayLike | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Pairwise:
    """How often, within a group (one document), a consistent row outscores an inconsistent one.

    Every (consistent, inconsistent) pair inside a group counts once: 1 when the consistent
    row's score is higher, ½ on a tie, 0 otherwise (``scores`` may be verdicts). Groups with
    one class only make no pair. The 95% interval resamples *groups* with replacement
    (pairs of one document are not independent). ``kinds`` (one per row) break the figure
    down by the kind of each pair's inconsistent row.

    Vectorised: scores become integer ranks, and each inconsistent row counts the consistent
    rows of its group above and level with it by binary search on sorted (group, rank) keys,
    so a million rows take well under a second.
    """
    g = np.unique(np.asarray(groups), return_inverse=True)[1].astype(np.int64)
    t = np.asarray(y_true, dtype=np.int64)
    rank = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)[1].astype(np.int64)
    levels = int(rank.max()) + 2 if rank.size else 1
    key = g * levels + rank
    positive = np.sort(key[t == 1])
    negative = t == 0
    neg_key, neg_group = key[negative], g[negative]
    above_or_level = np.searchsorted(positive, neg_key, side="left")
    level_end = np.searchsorted(positive, neg_key, side="right")
    group_end = np.searchsorted(positive, neg_group * levels + levels, side="left")
    group_start = np.searchsorted(positive, neg_group * levels, side="left")
    wins = (group_end - level_end) + 0.5 * (level_end - above_or_level)
    pairs = (group_end - group_start).astype(np.float64)
    total_pairs = int(pairs.sum())
    if total_pairs == 0:
        return Pairwise(None, 0, 0, None, {})
    n_groups = int(g.max()) + 1
    group_wins = np.bincount(neg_group, weights=wins, minlength=n_groups)
    group_pairs = np.bincount(neg_group, weights=pairs, minlength=n_groups)
    paired = group_pairs > 0
    group_wins, group_pairs = group_wins[paired], group_pairs[paired]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(group_pairs.size, np.full(group_pairs.size, 1 / group_pairs.size), size=resamples)
    samples = (draws @ group_wins) / (draws @ group_pairs)
    by_kind: dict[str, tuple[float, int]] = {}
    if kinds is not None:
        kind = np.asarray(kinds, dtype=object)[negative]
        for name in sorted({str(k) for k in kind if k is not None}):
            mask = (kind == name) & (pairs > 0)
            if mask.any():
                by_kind[name] = (float(wins[mask].sum() / pairs[mask].sum()), int(pairs[mask].sum()))
    return Pairwise(
        value=float(group_wins.sum() / total_pairs),
        pairs=total_pairs,
        groups=int(paired.sum()),
        interval=_percentile_interval(samples),
        by_kind=by_kind,
    )
