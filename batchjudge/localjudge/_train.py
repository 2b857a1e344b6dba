"""Fitting a local judge: L2 logistic regression by Newton's method, with every feature's
sign fixed by what it means, then Platt calibration.

From scratch, the rows are split by document (no document on both sides, so the held-out
part measures generalisation to unseen documents, not to unseen summaries of known ones):
the logistic regression is fitted on about 80% of the documents, the two Platt parameters
on the rest. Trained with log-loss, the result's ``score`` is a calibrated P(consistent),
so its ROC-AUC and log-loss mean something.

Fine-tuning (``prior=``) starts from a trained judge instead: its standardisation is kept,
and the fit is pulled toward its (calibrated) weights, not toward zero: an L2 prior centred
on what the judge knew, each feature's penalty scaled by how few rows show it, so evidence
the new rows say little about keeps its weight (a judge that finds negations still finds
them after fine-tuning on data without any) while what the rows do show moves the weights.
How strongly it pulls is chosen on data the fit does not see: every strength of
:data:`L2_PRIOR_GRID` is fitted :data:`PRIOR_FOLDS` times, each time on all documents but one
fold and scored on that fold, and the strength with the lowest out-of-fold log-loss wins.
The same out-of-fold logits set the calibration (Platt), and with it the decision threshold,
so neither is chosen on the rows that fitted the weights. ``sources`` with
``source_weights`` weigh each source's rows so that its total weight is its share (equal
shares by default): every source counts as its share says, a large one cannot drown a small
one, and perturbed twins added as a source of their own move the judge. ``balance`` weighs
the two classes equally, so a training mix that holds more of one class (perturbed twins are
all inconsistent) does not become the judge's base rate.
Everything is deterministic for a given input and seed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from batchjudge.errors import InputError
from batchjudge.localjudge._features import FEATURE_NAMES, FEATURE_SIGNS, extract
from batchjudge.localjudge._judge import LocalJudge
from batchjudge.core.metrics import roc_auc

__all__ = [
    "L2",
    "L2_PRIOR_GRID",
    "PRIOR_FOLDS",
    "balanced",
    "feature_matrix",
    "log_loss",
    "recalibrate",
    "row_weights",
    "train",
]

L2 = 1.0
"""Ridge penalty on the standardised coefficients (not on the intercept)."""
L2_PRIOR_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
"""Strengths of the pull toward a fine-tuned judge's prior, tried by cross-validation (the
lowest out-of-fold log-loss wins). Each is per unit of evidence: a feature's penalty is the
strength over the share of rows where the feature is not at its usual value, so a feature
few rows exercise (a negation) keeps its prior weight unless those rows say otherwise
clearly, while one every row shows (a name count) follows the data. On all of FIB train
(five folds by article) the out-of-fold log-loss runs from 0.495 at 0.3 to 0.580 at 100: FIB
says much the starting judge did not know; other data may say less."""
PRIOR_FOLDS = 5
"""Folds (by document) that choose the prior's strength and the calibration of a fine-tune."""
_PLATT_L2 = 1.0
"""Keeps the calibration slope finite when a small held-out part is perfectly separated."""
_HELDOUT_PER_MILLE = 200
_MIN_ROWS = 20
_EPS = 1e-12

Array = NDArray[np.float64]


def feature_matrix(premises: Sequence[str], hypotheses: Sequence[str]) -> Array:
    """One row of :data:`FEATURE_NAMES` features per (premise, hypothesis) pair."""
    return np.array(
        [extract(p, h)[0] for p, h in zip(premises, hypotheses, strict=True)], dtype=np.float64
    ).reshape(len(premises), len(FEATURE_NAMES))


def log_loss(y: Array, p: Array) -> float:
    """Mean negative log-likelihood of labels ``y`` under probabilities ``p``."""
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _newton_logistic(
    x: Array,
    y: Array,
    l2: float | Array,
    iterations: int = 100,
    *,
    weights: Array | None = None,
    center: Array | None = None,
) -> Array:
    """Weights ``[intercept, coef...]`` minimising the row-``weights``-ed log-loss (summed)
    plus ``sum(l2/2 * (coef - center)^2)`` (``l2`` one number or one per coefficient;
    ``center`` holds the intercept first; the intercept is not penalised)."""
    design = np.hstack([np.ones((len(x), 1)), x])
    penalty = np.r_[0.0, np.broadcast_to(np.asarray(l2, dtype=np.float64), (x.shape[1],))]
    s = np.ones(len(x)) if weights is None else weights
    c = np.zeros(design.shape[1]) if center is None else center

    def objective(w: Array) -> float:
        z = design @ w
        # log(1 + e^z) - y z, summed stably
        return float(s @ (np.logaddexp(0.0, z) - y * z) + 0.5 * penalty @ (w - c) ** 2)

    w = c.copy()
    current = objective(w)
    for _ in range(iterations):
        p = _sigmoid(design @ w)
        gradient = design.T @ (s * (p - y)) + penalty * (w - c)
        hessian = (design.T * (s * p * (1 - p))) @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        # Halve the step until the objective does not rise: from a far start (a prior's
        # weights on other data) a full Newton step can overshoot where p(1-p) is ~0.
        for _ in range(50):
            trial = objective(w - step)
            if trial <= current + 1e-12:
                break
            step *= 0.5
        w -= step
        current = objective(w)
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return w


def _monotone_logistic(
    z: Array, y: Array, l2: float | Array, *, weights: Array | None = None, center: Array | None = None
) -> tuple[float, Array]:
    """(intercept, coef) of an L2 logistic regression whose signs obey :data:`FEATURE_SIGNS`.

    Evidence must only ever count one way (an unsupported number can never make a summary
    *more* likely consistent), whatever quirk of the training data says otherwise: a
    feature whose fitted sign is wrong is dropped (its coefficient fixed at 0) and the rest
    refitted, the worst offender first, until every sign is right. ``center`` (intercept
    first) is where the penalty pulls; zero by default.
    """
    signs = np.array(FEATURE_SIGNS, dtype=np.float64)
    active = np.ones(z.shape[1], dtype=bool)
    while True:
        kept = None if center is None else np.r_[center[0], center[1:][active]]
        penalty = np.broadcast_to(np.asarray(l2, dtype=np.float64), (z.shape[1],))[active]
        w = _newton_logistic(z[:, active], y, penalty, weights=weights, center=kept)
        coef = np.zeros(z.shape[1])
        coef[active] = w[1:]
        wrong = coef * signs < 0
        if not wrong.any():
            return float(w[0]), coef
        active[int(np.argmax(np.where(wrong, np.abs(coef), -1.0)))] = False


def row_weights(sources: Sequence[str], shares: Mapping[str, float] | None = None) -> Array:
    """Per-row weights giving each source a total weight in proportion to its share.

    Weights average 1 over the rows; a source missing from ``shares`` (or every source when
    ``shares`` is None) has share 1, so by default each source weighs the same however many
    rows it brings. Raises :class:`InputError` for a negative share or all-zero shares.
    """
    names = sorted(set(sources))
    given = dict(shares or {})
    share = {name: float(given.get(name, 1.0)) for name in names}
    if any(v < 0 for v in share.values()) or not any(share.values()):
        raise InputError(f"source weights must be non-negative with a positive sum, got {share}")
    counts = {name: 0 for name in names}
    for source in sources:
        counts[source] += 1
    total = sum(share.values())
    n = len(sources)
    per_row = {name: share[name] / total * n / counts[name] for name in names}
    return np.array([per_row[source] for source in sources], dtype=np.float64)


def balanced(y: Array, weights: Array | None = None) -> Array:
    """``weights`` (1 per row when None) rescaled so each class holds half the total weight."""
    w = np.ones(len(y)) if weights is None else weights.astype(np.float64, copy=True)
    half = 0.5 * w.sum()
    for label in (0.0, 1.0):
        mine = y == label
        if mine.any():
            w[mine] *= half / w[mine].sum()
    return w


def _heldout_mask(premises: Sequence[str], seed: int) -> NDArray[np.bool_]:
    """Which rows are held out: about 20% of the documents, chosen by a seeded hash."""
    salt = str(seed).encode()
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8, key=salt).digest(), "big")
            % 1000
            < _HELDOUT_PER_MILLE
            for p in premises
        ]
    )


def _metrics(y: Array, p: Array) -> dict[str, float | None]:
    auc = roc_auc(y, p)
    return {
        "log_loss": round(log_loss(y, p), 6),
        "accuracy": round(float(np.mean((p >= 0.5) == (y == 1))), 6),
        "roc_auc": None if auc is None else round(auc, 6),
    }


def train(
    premises: Sequence[str],
    hypotheses: Sequence[str],
    targets: Sequence[int],
    *,
    name: str,
    seed: int = 0,
    l2: float | None = None,
    data: str = "",
    prior: LocalJudge | None = None,
    sources: Sequence[str] | None = None,
    source_weights: Mapping[str, float] | None = None,
    balance: bool = False,
) -> LocalJudge:
    """Fit a local judge on labelled pairs (target 1 consistent, 0 inconsistent).

    From scratch (no ``prior``): ``seed`` chooses which documents are held out for
    calibration; the returned judge's ``provenance`` records the sizes, the seed, the
    penalty (``l2``, default :data:`L2`) and the held-out metrics of the raw and the
    calibrated model next to the constant-prior baseline (the calibrated ones are measured
    on the rows its two Platt parameters were fitted on: optimistic by a hair).

    With a ``prior`` judge: every row is fitted, pulled toward the prior's weights with the
    strength ``l2`` or, by default, the one of :data:`L2_PRIOR_GRID` that cross-validation by
    document prefers (``seed`` chooses the folds), and calibrated on the out-of-fold logits;
    the provenance records each strength's out-of-fold figures. See the module docstring.

    ``sources`` names each row's source and ``source_weights`` each source's share (see
    :func:`row_weights`). ``balance`` weighs the classes equally (see :func:`balanced`).
    ``data`` is a free-text description kept in the provenance.
    """
    n = len(targets)
    if not len(premises) == len(hypotheses) == n:
        raise InputError(
            f"training data: {len(premises)} premises, {len(hypotheses)} hypotheses, "
            f"{n} targets; they must be the same length"
        )
    y = np.asarray(targets, dtype=np.float64)
    if n < _MIN_ROWS or not np.isin(y, (0.0, 1.0)).all() or len(np.unique(y)) < 2:
        raise InputError(
            f"training data: need at least {_MIN_ROWS} rows with targets 0 and 1 (both), "
            f"got {n} rows with targets {sorted(set(np.unique(y).tolist()))}"
        )
    if sources is not None and len(sources) != n:
        raise InputError(f"training data: {len(sources)} sources for {n} rows")
    weights = None if sources is None else row_weights(sources, source_weights)
    if balance:
        weights = balanced(y, weights)
    x = feature_matrix(premises, hypotheses)
    provenance: dict[str, Any] = {"data": data, "rows": n, "seed": seed}
    if balance:
        provenance["balanced_classes"] = True
    if sources is not None and weights is not None:
        first = {source: i for i, source in reversed(list(enumerate(sources)))}
        provenance["sources"] = {
            source: {"rows": sources.count(source), "row_weight": round(float(weights[i]), 6)}
            for source, i in sorted(first.items())
        }
    if prior is not None:
        folds = _folds(premises, seed)
        return _fine_tune(prior, x, y, weights, folds, name=name, l2=l2, provenance=provenance)
    l2 = L2 if l2 is None else l2
    heldout = _heldout_mask(premises, seed)
    calibrate = len(np.unique(y[heldout])) == 2 and len(np.unique(y[~heldout])) == 2
    fit = ~heldout if calibrate else np.ones(n, dtype=bool)

    mean = x[fit].mean(axis=0)
    scale = x[fit].std(axis=0)
    scale[scale < 1e-9] = 1.0
    w_fit = None if weights is None else weights[fit]
    intercept, coef = _monotone_logistic((x[fit] - mean) / scale, y[fit], l2, weights=w_fit)

    provenance.update(l2=l2, fit_rows=int(fit.sum()), heldout_rows=int((~fit).sum()))
    calibration = (1.0, 0.0)
    if calibrate:
        logits = intercept + ((x[heldout] - mean) / scale) @ coef
        w_held = None if weights is None else weights[heldout]
        a_c = _newton_logistic(logits[:, None], y[heldout], _PLATT_L2, weights=w_held)
        calibration = (float(a_c[1]), float(a_c[0]))
        base_rate = float(y[fit].mean())
        provenance["heldout"] = {
            "baseline_log_loss": round(log_loss(y[heldout], np.full(heldout.sum(), base_rate)), 6),
            "raw": _metrics(y[heldout], _sigmoid(logits)),
            "calibrated": _metrics(y[heldout], _sigmoid(calibration[0] * logits + calibration[1])),
        }
    return LocalJudge(
        name=name,
        mean=tuple(_round(v) for v in mean),
        scale=tuple(_round(v) for v in scale),
        coef=tuple(_round(v) for v in coef),
        intercept=_round(intercept),
        calibration=(_round(calibration[0]), _round(calibration[1])),
        provenance=provenance,
    )


_MIN_SHARE = 0.01


def _evidence_share(x: Array, weights: Array | None) -> Array:
    """Per feature, the (weighted) share of rows where it is not at its most common value:
    how many rows say anything about it."""
    s = np.ones(len(x)) if weights is None else weights
    shares = []
    for column in x.T:
        inverse = np.unique(column, return_inverse=True)[1]
        mode = int(np.argmax(np.bincount(inverse, weights=s)))
        shares.append(float(s[inverse != mode].sum() / s.sum()))
    return np.array(shares)


def _pulled(z: Array, y: Array, x: Array, weights: Array | None, center: Array, l2: float) -> tuple[float, Array]:
    """The sign-constrained fit of standardised ``z`` pulled toward ``center``, each
    feature's penalty ``l2`` over its evidence share in the raw features ``x``."""
    penalty = l2 / np.maximum(_evidence_share(x, weights), _MIN_SHARE)
    return _monotone_logistic(z, y, penalty, weights=weights, center=center)


def _folds(premises: Sequence[str], seed: int) -> NDArray[np.int64]:
    """Each row's fold (0 to :data:`PRIOR_FOLDS` - 1), by a seeded hash of its document, so
    no document is on both sides of a split."""
    salt = f"folds:{seed}".encode()
    return np.array(
        [int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8, key=salt).digest(), "big") % PRIOR_FOLDS
         for p in premises],
        dtype=np.int64,
    )  # fmt: skip


def _fine_tune(
    prior: LocalJudge, x: Array, y: Array, weights: Array | None, folds: NDArray[np.int64], *,
    name: str, l2: float | None, provenance: dict[str, Any],
) -> LocalJudge:
    """Fit every row pulled toward ``prior``'s weights; the strength (unless ``l2``) and the
    calibration come from out-of-fold logits (see the module docstring)."""
    mean = np.array(prior.mean)
    scale = np.array(prior.scale)
    a, c = prior.calibration
    center = np.r_[a * prior.intercept + c, a * np.array(prior.coef)]
    z = (x - mean) / scale
    s = np.ones(len(y)) if weights is None else weights

    def fit(rows: NDArray[np.bool_], strength: float) -> tuple[float, Array]:
        return _pulled(z[rows], y[rows], x[rows], s[rows], center, strength)

    def out_of_fold(strength: float) -> Array:
        logits = np.zeros(len(y))
        for fold in np.unique(folds):
            test = folds == fold
            if len(np.unique(y[~test])) == 2:
                b, coef = fit(~test, strength)
                logits[test] = b + z[test] @ coef
            else:  # a fold that leaves one class only: the prior's own logits stand in
                logits[test] = center[0] + z[test] @ center[1:]
        return logits

    searched: dict[str, dict[str, float | None]] = {}
    best: tuple[float, float, Array] | None = None
    for strength in L2_PRIOR_GRID if l2 is None else (l2,):
        logits = out_of_fold(strength)
        loss = float(s @ (np.logaddexp(0.0, logits) - y * logits) / s.sum())
        auc = roc_auc(y, logits)
        searched[f"{strength:g}"] = {"log_loss": round(loss, 6), "roc_auc": None if auc is None else round(auc, 6)}
        if best is None or loss < best[0]:
            best = (loss, strength, logits)
    assert best is not None  # the grid is never empty
    _, strength, logits = best
    platt = _newton_logistic(logits[:, None], y, _PLATT_L2, weights=s)
    intercept, coef = fit(np.ones(len(y), dtype=bool), strength)
    calibrated = _sigmoid(platt[1] * logits + platt[0])
    provenance.update(
        prior=prior.name, l2=strength, fit_rows=len(y), heldout_rows=0, folds=int(len(np.unique(folds))),
        out_of_fold={"l2": searched, "calibrated": _metrics(y, calibrated)},
    )  # fmt: skip
    return LocalJudge(
        name=name,
        mean=prior.mean,
        scale=prior.scale,
        coef=tuple(_round(v) for v in coef),
        intercept=_round(intercept),
        calibration=(_round(float(platt[1])), _round(float(platt[0]))),
        provenance=provenance,
    )


def _temperature(z: Array, y: Array, iterations: int = 100) -> float:
    """The ``t > 0`` minimising the log-loss of ``sigmoid(t * z)`` (Newton's method on one
    variable, kept positive by halving steps that would cross zero)."""
    t = 1.0
    for _ in range(iterations):
        p = _sigmoid(t * z)
        gradient = float(z @ (p - y))
        curvature = float((z * z) @ (p * (1 - p))) + 1e-12
        step = gradient / curvature
        while t - step <= 0:
            step /= 2
        t -= step
        if abs(step) < 1e-12:
            break
    return t


RESAMPLES = 2000
"""Bootstrap resamples behind a conservative temperature (see :func:`recalibrate`)."""


def _temperature_bound(z: Array, y: Array, groups: Sequence[str], confidence: float, seed: int) -> float:
    """The lower one-sided ``confidence`` bound of the temperature: its ``1 - confidence``
    quantile over :data:`RESAMPLES` bootstrap resamples of the groups (rows of one document
    are resampled together: they are not independent)."""
    inverse = np.unique(np.asarray(groups), return_inverse=True)[1]
    members = [np.flatnonzero(inverse == g) for g in range(int(inverse.max()) + 1)]
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(RESAMPLES):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        if len(np.unique(y[rows])) == 2:
            found.append(_temperature(z[rows], y[rows]))
    return float(np.quantile(found, 1.0 - confidence))


def recalibrate(
    judge: LocalJudge, premises: Sequence[str], hypotheses: Sequence[str], targets: Sequence[int],
    *, data: str = "", confidence: float | None = None, seed: int = 0,
) -> LocalJudge:
    """``judge`` with its confidence rescaled by a temperature fitted on other labelled pairs.

    Temperature scaling multiplies the judge's calibrated logit by one number ``t``: below 1
    the scores move toward ½ (a judge overconfident on these data), above 1 away from it.
    The ranking and the decision threshold are unchanged (same verdicts, same ROC-AUC); only
    how sure the score says it is moves, so a score of 0.8 is right about 80% of the time on
    data like these.

    With ``confidence`` (say 0.95), ``t`` is instead the lowest temperature these pairs
    cannot rule out at that confidence (a one-sided bootstrap bound, documents resampled
    with ``seed``): for a judge calibrated on a small sample and used on data unlike it, a
    score that errs toward ½ is the honest one. The provenance records the data, the fitted
    ``t``, the one used, and the log-loss before and after.
    """
    y = np.asarray(targets, dtype=np.float64)
    if len(np.unique(y)) < 2 or len(y) != len(premises) or len(y) != len(hypotheses):
        raise InputError("calibration data: need matching columns with targets 0 and 1 (both)")
    if confidence is not None and not 0.5 <= confidence < 1.0:
        raise InputError(f"calibration confidence must be in [0.5, 1), got {confidence}")
    a, c = judge.calibration
    z = np.array([a * judge.logit(row) + c for row in feature_matrix(premises, hypotheses)])
    fitted = _temperature(z, y)
    t = fitted if confidence is None else _temperature_bound(z, y, premises, confidence, seed)
    provenance = dict(judge.provenance)
    provenance["calibration"] = {
        "data": data,
        "rows": len(y),
        "temperature": round(t, 6),
        **({} if confidence is None else {"fitted_temperature": round(fitted, 6), "confidence": confidence,
                                          "resamples": RESAMPLES, "seed": seed}),
        "log_loss_before": round(log_loss(y, _sigmoid(z)), 6),
        "log_loss_after": round(log_loss(y, _sigmoid(t * z)), 6),
    }  # fmt: skip
    return replace(judge, calibration=(_round(t * a), _round(t * c)), provenance=provenance)


def _round(value: float) -> float:
    """Nine significant digits: stable JSON across BLAS builds, far below model noise."""
    return float(f"{value:.9g}") if math.isfinite(value) else value
