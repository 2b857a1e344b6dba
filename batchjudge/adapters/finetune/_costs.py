"""What fine-tuning costs: USD per million training tokens, per base model.

From Mistral's published fine-tuning prices (la Plateforme, 2024–2025), plus the minimum fee
it charged per job; prices change, so callers may pass their own table. A model is priced by
its exact name, then by the longest table name it starts with (``open-mistral-7b-2407`` →
``open-mistral-7b``); a model the table does not know gets no estimate rather than zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MIN_JOB_FEE", "TRAINING_PRICES", "TrainingCost", "training_cost", "training_price"]

TRAINING_PRICES: Mapping[str, float] = {
    "open-mistral-7b": 1.0,
    "open-mistral-nemo": 1.0,
    "mistral-small": 3.0,
    "codestral": 3.0,
    "mistral-large": 9.0,
    "local-judge": 0.0,
}
"""USD per million training tokens (one epoch over the file's tokens)."""

MIN_JOB_FEE = 4.0
"""USD charged at least per hosted fine-tuning job."""


@dataclass(frozen=True)
class TrainingCost:
    """An estimate: tokens per epoch, epochs, USD per epoch and in total (``None`` unpriced)."""

    model: str
    tokens_per_epoch: int
    epochs: float
    usd_per_epoch: float | None
    usd_total: float | None


def training_price(model: str, prices: Mapping[str, float] = TRAINING_PRICES) -> float | None:
    """USD per million training tokens for ``model``, or ``None`` when unknown."""
    if model in prices:
        return prices[model]
    prefixes = [name for name in prices if model.startswith(name)]
    return prices[max(prefixes, key=len)] if prefixes else None


def training_cost(
    model: str, tokens_per_epoch: int, epochs: float = 1.0, prices: Mapping[str, float] = TRAINING_PRICES
) -> TrainingCost:
    """Estimate a job's cost; the total includes :data:`MIN_JOB_FEE` for priced hosted models."""
    price = training_price(model, prices)
    if price is None:
        return TrainingCost(model, tokens_per_epoch, epochs, None, None)
    per_epoch = tokens_per_epoch * price / 1_000_000
    total = per_epoch * epochs
    return TrainingCost(model, tokens_per_epoch, epochs, per_epoch, max(total, MIN_JOB_FEE) if price else total)
