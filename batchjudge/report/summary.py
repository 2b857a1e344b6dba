"""A run's report as one JSON-able dict: counts, quality, tokens, cost, latency, failures.

Which rows each figure uses (stated here because it changes the numbers):

- Classification metrics use the *scored* rows: labelled (``target`` not null) and ``ok``.
  ``accuracy_all`` also counts labelled rows that failed or did not parse as wrong — the
  cookbook's convention (its scorer compared ``None`` with the target).
- ROC-AUC, PR-AUC, calibration (Brier score, ECE, reliability bins) and the threshold table
  use the scored rows that carry a ``score``.
- Pairwise accuracy uses the scored rows that the run's inputs put in one group (a
  ``pair_id``/``group`` column, else a shared premise) with both labels; their scores when
  every one has a score, else their verdicts.
- Tokens and cost add up every row (a failed row's tokens were billed if it got a reply; a
  row that reused an identical request's answer carries no tokens). A batch-mode run is priced
  at the batch API's rate; a run of the local judge, a mock provider or the emulator bills
  nothing (``billed`` false, ``not_billed`` says why, ``cost_usd`` 0).
- Latency percentiles use every row with a latency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from batchjudge.core.results import STATUS_FAILED, STATUS_OK, STATUS_PARSE_ERROR
from batchjudge.report.failures import top_errors
from batchjudge.report.loading import RunData
from batchjudge.core.metrics import (
    average_precision,
    bootstrap_intervals,
    brier_score,
    calibration_bins,
    confusion,
    flag_inconsistent_at,
    latency_percentiles,
    pairwise_accuracy,
    roc_auc,
)
from batchjudge.report.pairs import input_groups
from batchjudge.report.prices import PriceTable, unbilled

__all__ = ["REPORT_SCHEMA_VERSION", "Scored", "scored_rows", "summarize", "worst_mistakes"]

REPORT_SCHEMA_VERSION = 1
"""The layout of :func:`summarize`'s dict (``report --json``), under ``schema_version``.
Bumped when a key is removed or renamed or changes meaning or type, so that a script reading
the old layout would misread the new one; a new key (as ``top_errors``) is no bump."""

POSITIVE_NOTE = (
    "precision/recall/f1 are given per class; the cookbook's F1 took 'consistent' as positive"
)


@dataclass(frozen=True)
class Scored:
    """The labelled ok rows as arrays: targets, verdicts and scores (NaN when absent)."""

    row_id: list[str]
    target: NDArray[np.int64]
    verdict: NDArray[np.int64]
    score: NDArray[np.float64]

    @property
    def has_score(self) -> NDArray[np.bool_]:
        return np.isfinite(self.score)


def scored_rows(results: pl.DataFrame) -> Scored:
    """Select the rows classification metrics are computed on."""
    rows = results.filter(
        (pl.col("status") == STATUS_OK)
        & pl.col("target").is_not_null()
        & pl.col("verdict").is_not_null()
    )
    return Scored(
        row_id=rows["row_id"].to_list(),
        target=rows["target"].cast(pl.Int64).to_numpy(),
        verdict=rows["verdict"].cast(pl.Int64).to_numpy(),
        score=rows["score"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
    )


_ERROR_CLASS = r"^\s*([A-Za-z_][\w.]*)\s*:"
"""An error message's class prefix (``RateLimitError: 429 ...`` → ``RateLimitError``)."""


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def summarize(run: RunData, prices: PriceTable, *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every figure of the report for ``run``; see the module docstring for which rows count."""
    df = run.results
    counts = df["status"].value_counts()
    by_status = dict(zip(counts["status"].to_list(), counts["count"].to_list(), strict=True))
    config = run.config
    stored = run.meta.get("endpoint")
    endpoint: dict[str, Any] = stored if isinstance(stored, dict) else {}
    summary: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run_dir": str(run.path),
        "model": config.get("model") or _single_model(df),
        "provider": config.get("provider"),
        "endpoint": endpoint.get("host"),
        "emulator": endpoint.get("emulator") is True,
        "mode": config.get("mode") or "online",
        "prompt": config.get("prompt"),
        "fingerprint": run.meta.get("fingerprint"),
        "created_at": run.meta.get("created_at"),
        "batchjudge_version": run.meta.get("batchjudge_version"),
        "n_rows": df.height,
        "n_total": run.total,
        "partial": run.partial,
        "n_ok": by_status.get(STATUS_OK, 0),
        "n_failed": by_status.get(STATUS_FAILED, 0),
        "n_parse_error": by_status.get(STATUS_PARSE_ERROR, 0),
        "n_reused": _reused(df),
    }
    summary.update(_quality(df, resamples=resamples, seed=seed))
    summary.update(_pairwise(run, resamples=resamples, seed=seed))
    if summary["pairwise"] is not None and summary["intervals"] is not None:
        summary["intervals"]["pairwise_accuracy"] = summary["pairwise"]["interval"]
    summary["tokens"] = _tokens(df)
    reason = unbilled(summary["provider"], emulator=summary["emulator"])
    summary.update(_cost(df, prices, batch=summary["mode"] == "batch") if reason is None else _unbilled(reason))
    summary["latency_ms"] = {
        k: _round(v, 3) for k, v in latency_percentiles(df["latency_ms"].to_numpy()).items()
    }
    summary["attempts"] = _attempts(df)
    summary["failures"] = _failures(df)
    summary["top_errors"] = top_errors(df)
    return summary


def _single_model(df: pl.DataFrame) -> str | None:
    """The rows' model when run.json does not name one and every row agrees."""
    models = df["model"].drop_nulls().unique()
    return str(models[0]) if models.len() == 1 else None


def _quality(df: pl.DataFrame, *, resamples: int, seed: int) -> dict[str, Any]:
    labelled = df.filter(pl.col("target").is_not_null())
    scored = scored_rows(df)
    out: dict[str, Any] = {
        "n_labelled": labelled.height,
        "n_scored": len(scored.row_id),
        "positive_class": POSITIVE_NOTE,
        "accuracy": None,
        "accuracy_all": None,
        "balanced_accuracy": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "confusion_matrix": None,
        "roc_auc": None,
        "pr_auc": None,
        "n_with_score": int(scored.has_score.sum()),
        "brier": None,
        "ece": None,
        "calibration": None,
        "inconsistent_at_thresholds": None,
        "intervals": None,
    }
    if not scored.row_id:
        return out
    counts = confusion(scored.target, scored.verdict)
    per_class = counts.per_class()
    out.update(
        accuracy=_round(counts.accuracy()),
        accuracy_all=_round((counts.tp + counts.tn) / labelled.height),
        balanced_accuracy=_round(counts.balanced_accuracy()),
        precision={k: _round(v) for k, v in per_class["precision"].items()},
        recall={k: _round(v) for k, v in per_class["recall"].items()},
        f1={k: _round(v) for k, v in per_class["f1"].items()},
        confusion_matrix={
            "labels": ["inconsistent", "consistent"],
            "layout": "rows = true class, columns = judged class",
            "matrix": counts.matrix,
        },
    )
    mask = scored.has_score
    target, score = scored.target[mask], scored.score[mask]
    if mask.any():
        bins, ece = calibration_bins(target, score)
        out.update(
            roc_auc=_round(roc_auc(target, score)),
            brier=_round(brier_score(target, score)),
            ece=_round(ece),
            calibration=[
                {k: _round(v) if isinstance(v, float) else v for k, v in b.items()} for b in bins
            ],
            pr_auc={
                "consistent": _round(average_precision(target, score, positive=1)),
                "inconsistent": _round(average_precision(target, score, positive=0)),
            },
            inconsistent_at_thresholds=[
                {k: _round(v) if isinstance(v, float) else v for k, v in row.items()}
                for row in flag_inconsistent_at(target, score)
            ],
        )
    # Intervals resample the scored rows; ROC-AUC's only when every scored row has a score.
    intervals = bootstrap_intervals(
        scored.target,
        scored.verdict,
        scored.score if mask.all() else None,
        resamples=resamples,
        seed=seed,
    )
    out["intervals"] = {
        "method": f"percentile bootstrap, {resamples} resamples, seed {seed}, 95%",
        **{
            k: None if v is None else [_round(v.low), _round(v.high)]
            for k, v in intervals.items()
        },
    }
    return out


def _pairwise(run: RunData, *, resamples: int, seed: int) -> dict[str, Any]:
    """``pairwise_accuracy`` and its details (``pairwise``), both None without pairs."""
    none: dict[str, Any] = {"pairwise_accuracy": None, "pairwise": None}
    df = run.results.filter(
        (pl.col("status") == STATUS_OK) & pl.col("target").is_not_null() & pl.col("verdict").is_not_null()
    )
    if df.is_empty():
        return none
    found = input_groups(run)
    if found is None:
        return none
    groups, origin = found
    rows = df.select("row_id", "target", "verdict", "score").join(groups, on="row_id", how="inner")
    if rows.is_empty():
        return none
    by_score = rows["score"].null_count() == 0
    values = rows["score"] if by_score else rows["verdict"].cast(pl.Float64)
    kinds = rows["kind"].to_numpy() if rows["kind"].null_count() < rows.height else None
    result = pairwise_accuracy(rows["group"].to_numpy(), rows["target"].to_numpy(), values.to_numpy(),
                               kinds, resamples=resamples, seed=seed)
    if result.value is None:
        return none
    return {
        "pairwise_accuracy": _round(result.value),
        "pairwise": {
            "pairs": result.pairs,
            "groups": result.groups,
            "groups_from": origin,
            "compared_by": "score" if by_score else "verdict (ties count one half)",
            "interval": None if result.interval is None else [_round(result.interval.low), _round(result.interval.high)],
            "by_kind": {k: {"pairwise_accuracy": _round(v), "pairs": n} for k, (v, n) in result.by_kind.items()},
        },
    }


def _tokens(df: pl.DataFrame) -> dict[str, int]:
    prompt = int(df["prompt_tokens"].fill_null(0).sum())
    completion = int(df["completion_tokens"].fill_null(0).sum())
    truncated = df["truncated_tokens"].fill_null(0)
    return {
        "prompt": prompt,
        "completion": completion,
        "total": prompt + completion,
        "truncated_rows": int((truncated > 0).sum()),
        "truncated_tokens": int(truncated.sum()),
    }


def _reused(df: pl.DataFrame) -> int:
    """Rows answered by an identical request's reply: a result, and no call of their own."""
    return df.filter((pl.col("attempts") == 0) & (pl.col("status") != STATUS_FAILED)).height


def _unbilled(reason: str) -> dict[str, Any]:
    return {"cost_usd": 0.0, "cost_by_model": {}, "unpriced_models": [], "prices_usd_per_million": {},
            "billed": False, "not_billed": reason, "pricing": None}


def _cost(df: pl.DataFrame, prices: PriceTable, *, batch: bool) -> dict[str, Any]:
    per_model = (
        df.with_columns(pl.col("model").fill_null("unknown"))
        .group_by("model", maintain_order=True)
        .agg(
            pl.col("prompt_tokens").fill_null(0).sum().alias("prompt"),
            pl.col("completion_tokens").fill_null(0).sum().alias("completion"),
        )
    )
    by_model: dict[str, float] = {}
    unpriced: list[str] = []
    for model, prompt, completion in per_model.iter_rows():
        price = prices.price(model)
        if price is None:
            if prompt or completion:
                unpriced.append(model)
            continue
        by_model[model] = round(price.cost(int(prompt), int(completion), batch=batch), 6)
    return {
        "cost_usd": None if unpriced else round(sum(by_model.values()), 6),
        "cost_by_model": by_model,
        "unpriced_models": unpriced,
        "prices_usd_per_million": {
            m: asdict(p) for m in by_model if (p := prices.price(m)) is not None
        },
        "billed": True,
        "not_billed": None,
        "pricing": "batch" if batch else "online",
    }


def _attempts(df: pl.DataFrame) -> dict[str, Any]:
    attempts = df["attempts"].drop_nulls()
    return {
        "total": int(attempts.sum()) if attempts.len() else 0,
        "retried_rows": int((attempts > 1).sum()),
        "max": int(attempts.max()) if attempts.len() else 0,  # type: ignore[arg-type]
    }


def _failures(df: pl.DataFrame) -> dict[str, int]:
    """Rows not ok, by ``status`` plus the error's class prefix (``failed: RateLimitError``)."""
    error_class = pl.col("error").str.extract(_ERROR_CLASS, 1)
    kinds = (
        df.filter(pl.col("status") != STATUS_OK)
        .select(
            pl.when(error_class.is_not_null())
            .then(pl.concat_str(pl.col("status"), pl.lit(": "), error_class))
            .otherwise(pl.col("status"))
            .alias("kind")
        )["kind"]
        .value_counts()
        .sort(["count", "kind"], descending=[True, False])
    )
    return dict(zip(kinds["kind"].to_list(), kinds["count"].to_list(), strict=True))


def worst_mistakes(run: RunData, limit: int = 20) -> list[dict[str, Any]]:
    """The judge's most confident wrong verdicts, most confident first.

    Confidence is the score's distance from ½ (a score of 0.02 on a consistent row is worse
    than 0.4); rows without a score come after those with one, in file order.
    """
    wrong = (
        run.results.filter(
            (pl.col("status") == STATUS_OK)
            & pl.col("target").is_not_null()
            & (pl.col("verdict") != pl.col("target"))
        )
        .with_columns(((pl.col("score") - 0.5).abs() * 2).alias("confidence"))
        .sort("confidence", descending=True, nulls_last=True, maintain_order=True)
        .head(limit)
    )
    return wrong.select(
        "row_id", "target", "verdict", "score", "confidence", "reason", "model"
    ).to_dicts()
