"""Metrics: hand-computed cases, scikit-learn agreement, ties, bootstrap behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from batchjudge.core.metrics import (
    average_precision,
    bootstrap_intervals,
    brier_score,
    calibration_bins,
    confusion,
    flag_inconsistent_at,
    latency_percentiles,
    pr_curve,
    roc_auc,
    roc_curve,
)

# tp=2 (rows 0, 2), fn=1 (row 1), fp=1 (row 4), tn=1 (row 3)
Y = [1, 1, 1, 0, 0]
P = [1, 0, 1, 0, 1]


def test_confusion_counts_take_consistent_as_positive_and_use_sklearn_layout() -> None:
    counts = confusion(Y, P)
    assert (counts.tp, counts.fn, counts.fp, counts.tn) == (2, 1, 1, 1)
    assert counts.matrix == [[1, 1], [1, 2]]  # rows true (incons., cons.), columns judged


def test_per_class_metrics_match_hand_computation() -> None:
    counts = confusion(Y, P)
    assert counts.accuracy() == pytest.approx(3 / 5)
    assert counts.precision(1) == pytest.approx(2 / 3)
    assert counts.recall(1) == pytest.approx(2 / 3)
    assert counts.f1(1) == pytest.approx(2 / 3)
    assert counts.precision(0) == pytest.approx(1 / 2)
    assert counts.recall(0) == pytest.approx(1 / 2)
    assert counts.f1(0) == pytest.approx(1 / 2)
    assert counts.balanced_accuracy() == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert counts.per_class()["f1"] == {"consistent": pytest.approx(2 / 3), "inconsistent": 0.5}


def test_undefined_ratios_are_none_not_zero() -> None:
    counts = confusion([1, 1, 0], [1, 1, 1])  # never judged inconsistent
    assert counts.precision(0) is None
    assert counts.f1(0) is None
    assert counts.recall(0) == 0.0
    only_consistent = confusion([1, 1], [1, 0])
    assert only_consistent.recall(0) is None and only_consistent.balanced_accuracy() is None


def test_roc_auc_counts_a_tie_as_one_half() -> None:
    # positive/negative pairs: (.9,.4)=1 (.9,.1)=1 (.4,.4)=½ (.4,.1)=1 → 3.5 / 4
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1], [0.5, 0.2]) is None


def test_roc_auc_for_the_inconsistent_class_is_the_same_ranking_reversed() -> None:
    y, s = [1, 1, 0, 0, 1], [0.9, 0.3, 0.4, 0.1, 0.6]
    assert roc_auc(y, s, positive=0) == pytest.approx(roc_auc(y, s))


def test_average_precision_matches_hand_computation() -> None:
    # thresholds .9 (P=1, R=.5), .8 (P=.5, R=.5), .7 (P=2/3, R=1), .1 (P=.5, R=1)
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # one tied step
    assert average_precision([0, 0], [0.5, 0.2]) is None


def test_curves_start_at_the_origin_and_end_at_full_recall() -> None:
    fpr, tpr = roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    recall, precision = pr_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    assert recall[-1] == 1.0 and precision[0] == 1.0


def test_flagging_inconsistent_by_confidence_threshold() -> None:
    y = [0, 0, 1, 0, 1]
    s = [0.02, 0.2, 0.15, 0.5, 0.9]  # P(inconsistent) = .98 .8 .85 .5 .1
    rows = {r["threshold"]: r for r in flag_inconsistent_at(y, s, (0.95, 0.8, 0.5))}
    assert rows[0.95] == {"threshold": 0.95, "flagged": 1, "precision": 1.0, "recall": pytest.approx(1 / 3)}
    assert rows[0.8]["flagged"] == 3 and rows[0.8]["precision"] == pytest.approx(2 / 3)
    assert rows[0.8]["recall"] == pytest.approx(2 / 3)
    assert rows[0.5]["flagged"] == 4 and rows[0.5]["recall"] == 1.0
    assert flag_inconsistent_at([1], [0.99], (0.9,))[0]["precision"] is None


def test_latency_percentiles_ignore_missing_values() -> None:
    values = [10.0, 20.0, float("nan"), 30.0, 40.0]
    got = latency_percentiles(values)
    assert got["p50"] == pytest.approx(25.0)
    assert got["p99"] == pytest.approx(np.percentile([10, 20, 30, 40], 99))
    assert latency_percentiles([]) == {"p50": None, "p95": None, "p99": None, "mean": None}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn_on_random_tied_data(seed: int) -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    s = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.25), 0, 1), 1)  # many ties
    p = (s >= 0.5).astype(int)
    counts = confusion(y, p)
    assert counts.matrix == skm.confusion_matrix(y, p, labels=[0, 1]).tolist()
    assert counts.accuracy() == pytest.approx(skm.accuracy_score(y, p))
    assert counts.balanced_accuracy() == pytest.approx(skm.balanced_accuracy_score(y, p))
    for label in (0, 1):
        assert counts.precision(label) == pytest.approx(skm.precision_score(y, p, pos_label=label))
        assert counts.recall(label) == pytest.approx(skm.recall_score(y, p, pos_label=label))
        assert counts.f1(label) == pytest.approx(skm.f1_score(y, p, pos_label=label))
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))
    assert average_precision(y, s, positive=0) == pytest.approx(skm.average_precision_score(1 - y, 1 - s))


def test_bootstrap_intervals_are_seeded_and_contain_the_estimate() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    p = (s >= 0.5).astype(int)
    first = bootstrap_intervals(y, p, s, resamples=500, seed=3)
    assert first == bootstrap_intervals(y, p, s, resamples=500, seed=3)
    assert first != bootstrap_intervals(y, p, s, resamples=500, seed=4)
    acc, auc = first["accuracy"], first["roc_auc"]
    assert acc is not None and acc.low < confusion(y, p).accuracy() < acc.high  # type: ignore[operator]
    assert auc is not None and auc.low < roc_auc(y, s) < auc.high  # type: ignore[operator]


def test_bootstrap_matches_naive_row_resampling_in_spread() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 400)
    s = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 2)
    p = (s >= 0.5).astype(int)
    fast = bootstrap_intervals(y, p, s, resamples=2000, seed=0)
    naive_acc, naive_auc = [], []
    for _ in range(2000):
        idx = rng.integers(0, y.size, y.size)
        naive_acc.append(np.mean(y[idx] == p[idx]))
        naive_auc.append(roc_auc(y[idx], s[idx]))
    for name, naive in (("accuracy", naive_acc), ("roc_auc", naive_auc)):
        interval = fast[name]
        assert interval is not None
        low, high = np.percentile(naive, [2.5, 97.5])
        width = high - low
        assert abs(interval.low - low) < 0.15 * width
        assert abs(interval.high - high) < 0.15 * width


def test_bootstrap_interval_is_none_when_the_metric_is_mostly_undefined() -> None:
    intervals = bootstrap_intervals([1, 1, 1], [1, 0, 1], [0.9, 0.2, 0.8], resamples=200)
    assert intervals["balanced_accuracy"] is None  # no inconsistent row: recall(0) undefined
    assert intervals["roc_auc"] is None
    assert intervals["accuracy"] is not None
    assert bootstrap_intervals([], [])["accuracy"] is None


def test_brier_score_and_calibration_error_match_hand_computation() -> None:
    y, s = [1, 0, 1, 1], [0.9, 0.1, 0.65, 0.95]
    assert brier_score(y, s) == pytest.approx((0.01 + 0.01 + 0.1225 + 0.0025) / 4)
    bins, ece = calibration_bins(y, s, bins=10)
    # bin [.1,.2): gap .1; bin [.6,.7): gap .35; bin [.9,1]: two rows, gap .075 each
    assert ece == pytest.approx((0.1 + 0.35 + 2 * 0.075) / 4)
    assert [(b["low"], b["n"]) for b in bins] == [(0.1, 1), (0.6, 1), (0.9, 2)]
    assert calibration_bins([1], [1.0])[0][0]["high"] == 1.0  # a score of 1 is in the last bin
    skm = pytest.importorskip("sklearn.metrics")
    assert brier_score(y, s) == pytest.approx(skm.brier_score_loss(y, s))


# ---------------------------------------------------------------- pairwise accuracy
def test_pairwise_accuracy_counts_each_consistent_inconsistent_pair_of_a_group_ties_half() -> None:
    from batchjudge.core.metrics import pairwise_accuracy

    groups = ["a", "a", "a", "b", "b", "c", "d", "d"]
    targets = [1, 0, 0, 1, 0, 1, 0, 0]  # c and d hold one class only: no pair
    scores = [0.9, 0.2, 0.9, 0.1, 0.5, 0.3, 0.1, 0.2]
    kinds = ["consistent", "number", "entity", "consistent", "number", "consistent", "x", "x"]
    result = pairwise_accuracy(groups, targets, scores, kinds, resamples=200)
    assert (result.value, result.pairs, result.groups) == (0.5, 3, 2)  # (1 + ½ + 0) / 3
    assert result.by_kind == {"entity": (0.5, 1), "number": (0.5, 2)}
    assert result.interval is not None and result.interval.low <= 0.5 <= result.interval.high


def test_pairwise_accuracy_of_a_verdict_only_judge_scores_its_verdicts() -> None:
    from batchjudge.core.metrics import pairwise_accuracy

    # Document 1: both judged consistent (tie, ½); 2: right (1); 3: both wrong way (0);
    # 4: two inconsistent summaries, one caught (1) and one not (½).
    groups = [1, 1, 2, 2, 3, 3, 4, 4, 4]
    targets = [1, 0, 1, 0, 1, 0, 1, 0, 0]
    verdicts = [1, 1, 1, 0, 0, 1, 1, 0, 1]
    result = pairwise_accuracy(groups, targets, verdicts)
    assert result.value == pytest.approx((0.5 + 1 + 0 + 1 + 0.5) / 5) and result.pairs == 5


def test_pairwise_accuracy_is_none_without_a_group_holding_both_labels() -> None:
    from batchjudge.core.metrics import pairwise_accuracy

    result = pairwise_accuracy(["a", "b"], [1, 0], [0.9, 0.1])
    assert (result.value, result.pairs, result.interval) == (None, 0, None)


def test_pairwise_accuracy_agrees_with_a_plain_loop_on_random_data() -> None:
    from batchjudge.core.metrics import pairwise_accuracy

    rng = np.random.default_rng(7)
    groups = rng.integers(0, 40, 600)
    targets = rng.integers(0, 2, 600)
    scores = np.round(rng.random(600), 1)  # many ties
    wins = pairs = 0.0
    for g in np.unique(groups):
        pos = scores[(groups == g) & (targets == 1)]
        neg = scores[(groups == g) & (targets == 0)]
        for p in pos:
            for n in neg:
                wins += 1.0 if p > n else 0.5 if p == n else 0.0
                pairs += 1
    result = pairwise_accuracy(groups, targets, scores, resamples=10)
    assert result.pairs == pairs and result.value == pytest.approx(wins / pairs)
