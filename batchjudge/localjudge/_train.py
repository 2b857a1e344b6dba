"""Fitting a local judge: L2 logistic regression by Newton's method, with every feature's
sign fixed by what it means, then Platt calibration.

The rows are split by document (no document on both sides, so the held-out part measures
generalisation to unseen documents, not to unseen summaries of known ones): the logistic
regression is fitted on about 80% of the documents, the two Platt parameters on the rest.
Trained with log-loss, the result's ``score`` is a calibrated P(consistent), so its ROC-AUC
and log-loss mean something. Everything is deterministic for a given input and seed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from batchjudge.errors import InputError
from batchjudge.localjudge._features import FEATURE_NAMES, FEATURE_SIGNS, extract
from batchjudge.localjudge._judge import LocalJudge
from batchjudge.core.metrics import roc_auc

__all__ = ["L2", "feature_matrix", "log_loss", "train"]

L2 = 1.0
"""Ridge penalty on the standardised coefficients (not on the intercept)."""
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


def _newton_logistic(x: Array, y: Array, l2: float, iterations: int = 100) -> Array:
    """Weights ``[intercept, coef...]`` minimising log-loss + ``l2/2 * |coef|^2`` (summed)."""
    design = np.hstack([np.ones((len(x), 1)), x])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 0.0
    w = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = _sigmoid(design @ w)
        gradient = design.T @ (p - y) + penalty * w
        hessian = (design.T * (p * (1 - p))) @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return w


def _monotone_logistic(z: Array, y: Array, l2: float) -> tuple[float, Array]:
    """(intercept, coef) of an L2 logistic regression whose signs obey :data:`FEATURE_SIGNS`.

    Evidence must only ever count one way (an unsupported number can never make a summary
    *more* likely consistent), whatever quirk of the training data says otherwise: a
    feature whose fitted sign is wrong is dropped (its coefficient fixed at 0) and the rest
    refitted, the worst offender first, until every sign is right.
    """
    signs = np.array(FEATURE_SIGNS, dtype=np.float64)
    active = np.ones(z.shape[1], dtype=bool)
    while True:
        w = _newton_logistic(z[:, active], y, l2)
        coef = np.zeros(z.shape[1])
        coef[active] = w[1:]
        wrong = coef * signs < 0
        if not wrong.any():
            return float(w[0]), coef
        active[int(np.argmax(np.where(wrong, np.abs(coef), -1.0)))] = False


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
    l2: float = L2,
    data: str = "",
) -> LocalJudge:
    """Fit a local judge on labelled pairs (target 1 consistent, 0 inconsistent).

    ``seed`` chooses which documents are held out for calibration; ``data`` is a free-text
    description of the training data kept in the provenance. The returned judge's
    ``provenance`` records the sizes, the seed, the penalty and the held-out metrics of the
    raw and the calibrated model next to the constant-prior baseline (the calibrated ones
    are measured on the rows its two Platt parameters were fitted on: optimistic by a hair).
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
    x = feature_matrix(premises, hypotheses)
    heldout = _heldout_mask(premises, seed)
    calibrate = len(np.unique(y[heldout])) == 2 and len(np.unique(y[~heldout])) == 2
    fit = ~heldout if calibrate else np.ones(n, dtype=bool)

    mean = x[fit].mean(axis=0)
    scale = x[fit].std(axis=0)
    scale[scale < 1e-9] = 1.0
    intercept, coef = _monotone_logistic((x[fit] - mean) / scale, y[fit], l2)

    provenance: dict[str, Any] = {
        "data": data,
        "rows": n,
        "seed": seed,
        "l2": l2,
        "fit_rows": int(fit.sum()),
        "heldout_rows": int((~fit).sum()),
    }
    calibration = (1.0, 0.0)
    if calibrate:
        logits = intercept + ((x[heldout] - mean) / scale) @ coef
        a_c = _newton_logistic(logits[:, None], y[heldout], _PLATT_L2)
        calibration = (float(a_c[1]), float(a_c[0]))
        prior = float(y[fit].mean())
        provenance["heldout"] = {
            "baseline_log_loss": round(log_loss(y[heldout], np.full(heldout.sum(), prior)), 6),
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


def _round(value: float) -> float:
    """Nine significant digits: stable JSON across BLAS builds, far below model noise."""
    return float(f"{value:.9g}") if math.isfinite(value) else value
