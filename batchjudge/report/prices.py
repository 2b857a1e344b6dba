"""What a run cost: a per-model price table the user can override.

Prices are USD per million tokens, ``(input, output)``, from Mistral's public price list
(la Plateforme, 2025). They change; pass ``--prices FILE`` (JSON or TOML) to use yours::

    # prices.toml                         // prices.json
    [open-mistral-7b]                     {"open-mistral-7b": {"input": 0.25, "output": 0.25},
    input = 0.25                           "my-model": [1.0, 3.0]}
    output = 0.25

A model is priced by its exact name, then by the longest table name it starts with
(``mistral-large-2411`` → ``mistral-large``), then — for a fine-tuned ``ft:BASE:...`` — as
its base model. The batch API bills :data:`BATCH_DISCOUNT` of the online price. The ``local``
judge, a mock provider and the emulator bill nothing (:func:`unbilled`). A model with no price
is named in the report instead of being silently counted as free.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from batchjudge.adapters.tokens import base_model
from batchjudge.errors import ConfigError

__all__ = ["BATCH_DISCOUNT", "DEFAULT_PRICES", "Price", "PriceTable", "load_prices", "unbilled"]

BATCH_DISCOUNT = 0.5
"""Mistral's batch API bills half the online price per token."""

_UNBILLED = {"local": "local judge", "mock": "mock provider"}


def unbilled(provider: str | None, *, emulator: bool = False) -> str | None:
    """Why a run bills nothing (``local judge``, ``mock provider``, ``emulator``), or None
    when its tokens cost money."""
    if emulator:
        return "emulator"
    return _UNBILLED.get(provider or "")


@dataclass(frozen=True)
class Price:
    """USD per million input (prompt) and output (completion) tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float:
        """USD for these tokens, online or (``batch``) through the batch API."""
        online = (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000
        return online * BATCH_DISCOUNT if batch else online


DEFAULT_PRICES: Mapping[str, Price] = {
    "open-mistral-7b": Price(0.25, 0.25),
    "open-mixtral-8x7b": Price(0.7, 0.7),
    "open-mixtral-8x22b": Price(2.0, 6.0),
    "open-mistral-nemo": Price(0.15, 0.15),
    "ministral-3b": Price(0.04, 0.04),
    "ministral-8b": Price(0.1, 0.1),
    "mistral-small": Price(0.1, 0.3),
    "mistral-medium": Price(0.4, 2.0),
    "mistral-large": Price(2.0, 6.0),
    "codestral": Price(0.3, 0.9),
    "magistral-small": Price(0.5, 1.5),
    "magistral-medium": Price(2.0, 5.0),
    "local": Price(0.0, 0.0),
}


class PriceTable:
    """Looks up a model's :class:`Price`; user entries take precedence over the defaults."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._prices = {**DEFAULT_PRICES, **(overrides or {})}

    def price(self, model: str) -> Price | None:
        """The price of ``model``, or ``None`` when the table does not know it."""
        for name in (model, base_model(model)):
            if name in self._prices:
                return self._prices[name]
            prefixes = [p for p in self._prices if name.startswith(p)]
            if prefixes:
                return self._prices[max(prefixes, key=len)]
        return None


def load_prices(path: str | Path | None) -> PriceTable:
    """The default table, overridden by the JSON or TOML file at ``path`` when given."""
    if path is None:
        return PriceTable()
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{file}: price file does not exist")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read price file ({exc})") from exc
    try:
        data = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if file.suffix.lower() == ".toml" else "JSON"
        raise ConfigError(f"{file}: not valid {kind} ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected an object mapping model names to prices")
    return PriceTable({model: _price(file, model, value) for model, value in data.items()})


def _price(file: Path, model: str, value: object) -> Price:
    pair: tuple[object, object]
    if isinstance(value, dict) and set(value) == {"input", "output"}:
        pair = (value["input"], value["output"])
    elif isinstance(value, list) and len(value) == 2:
        pair = (value[0], value[1])
    else:
        raise ConfigError(
            f"{file}: model {model!r}: expected {{input, output}} or [input, output] "
            "in USD per million tokens"
        )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in pair):
        raise ConfigError(f"{file}: model {model!r}: prices must be non-negative numbers")
    return Price(float(pair[0]), float(pair[1]))  # type: ignore[arg-type]
