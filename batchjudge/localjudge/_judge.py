"""The local judge: the features of :mod:`._features` through a small logistic model.

``P(consistent) = sigmoid(a * (w · z + b0) + c)`` where ``z`` are the standardised features,
``w, b0`` a logistic regression and ``a, c`` its Platt calibration (both fitted by
:func:`batchjudge.localjudge.train`). The whole model is one small JSON file::

    {"format": "batchjudge-local-judge/1", "name": ..., "features": [...], "mean": [...],
     "scale": [...], "coef": [...], "intercept": ..., "calibration": [a, c],
     "threshold": 0.5, "provenance": {...}}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from batchjudge.errors import ConfigError, InputError
from batchjudge.localjudge._features import FEATURE_NAMES, Evidence, extract
from batchjudge.localjudge._registry import DEFAULT_MODEL, list_models, model_path

__all__ = ["FORMAT", "Judgement", "LocalJudge", "register"]

FORMAT = "batchjudge-local-judge/1"
_MAX_REASON_ITEMS = 3


@dataclass(frozen=True, slots=True)
class Judgement:
    """One verdict: 1 consistent / 0 inconsistent, P(consistent), and why."""

    verdict: int
    score: float
    reason: str


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _quoted(items: Sequence[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _reason(evidence: Evidence, verdict: int) -> str:
    """A short sentence naming what looked unsupported, strongest evidence first."""
    items = [f'"{fact}" where the document says "{said}"' for fact, said in evidence.contradicted]
    items += [f'unsupported number "{n}"' for n in evidence.numbers]
    items += [f'unsupported name "{n}"' for n in evidence.names]
    items += [f'negation "{n}" not in the document' for n in evidence.negations]
    if evidence.misplaced and len(items) < _MAX_REASON_ITEMS:
        items.append(f"{_quoted(evidence.misplaced[:2])} found, but not where the document says the rest")
    if not verdict and not items and evidence.words:
        items.append(f"unsupported words {_quoted(evidence.words[:3])}")
    if items:
        return "; ".join(items[:_MAX_REASON_ITEMS])
    if verdict:
        return "all facts found in the document"
    return "the claim only loosely matches the document"


@dataclass(frozen=True)
class LocalJudge:
    """A trained local hallucination judge; see the module docstring for the model."""

    name: str
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    calibration: tuple[float, float] = (1.0, 0.0)
    threshold: float = 0.5
    provenance: Mapping[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURE_NAMES

    def __post_init__(self) -> None:
        if self.features != FEATURE_NAMES:
            raise ConfigError(
                f"local judge {self.name!r} was trained on features {list(self.features)}, "
                f"this version computes {list(FEATURE_NAMES)}; retrain it"
            )
        n = len(FEATURE_NAMES)
        if not len(self.mean) == len(self.scale) == len(self.coef) == n:
            raise ConfigError(f"local judge {self.name!r}: expected {n} weights per vector")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"local judge {self.name!r}: threshold must be in [0, 1]")

    @cached_property
    def _linear(self) -> tuple[tuple[float, ...], float]:
        """Standardisation folded into the weights: ``logit = sum(w_i * x_i) + bias``."""
        weights = tuple(c / s for c, s in zip(self.coef, self.scale, strict=True))
        bias = self.intercept - sum(w * m for w, m in zip(weights, self.mean, strict=True))
        return weights, bias

    # ------------------------------------------------------------------ prediction
    def logit(self, features: Sequence[float]) -> float:
        """The model's logit for one feature vector, before calibration."""
        weights, logit = self._linear
        for w, x in zip(weights, features, strict=True):
            logit += w * x
        return logit

    def score(self, features: Sequence[float]) -> float:
        """P(consistent) for one feature vector (ordered as ``FEATURE_NAMES``)."""
        a, c = self.calibration
        return _sigmoid(a * self.logit(features) + c)

    def predict(self, premise: str, hypothesis: str) -> Judgement:
        """Judge whether ``hypothesis`` is supported by ``premise`` (both non-blank)."""
        if not premise.strip() or not hypothesis.strip():
            side = "premise" if not premise.strip() else "hypothesis"
            raise InputError(f"the local judge needs a non-empty {side}")
        features, evidence = extract(premise, hypothesis)
        score = self.score(features)
        verdict = int(score >= self.threshold)
        return Judgement(verdict, score, _reason(evidence, verdict))

    def predict_many(self, pairs: Iterable[tuple[str, str]]) -> list[Judgement]:
        """Judge many ``(premise, hypothesis)`` pairs (repeated premises are analysed once)."""
        return [self.predict(premise, hypothesis) for premise, hypothesis in pairs]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready weights file content."""
        return {
            "format": FORMAT,
            "name": self.name,
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "calibration": list(self.calibration),
            "threshold": self.threshold,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "weights") -> LocalJudge:
        """Rebuild a judge from :meth:`to_dict` output; ``origin`` names the file in errors."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ConfigError(f"{origin}: not a local judge weights file (format {FORMAT})")
        try:
            return cls(
                name=str(data["name"]),
                features=tuple(data["features"]),
                mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]),
                coef=tuple(float(v) for v in data["coef"]),
                intercept=float(data["intercept"]),
                calibration=(float(data["calibration"][0]), float(data["calibration"][1])),
                threshold=float(data["threshold"]),
                provenance=dict(data.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"{origin}: malformed local judge weights ({exc!r})") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights as JSON to ``path`` atomically; return the path."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            reason = exc.strerror
            raise ConfigError(f"{target}: cannot save local judge weights ({reason})") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return target

    @classmethod
    def load_file(cls, path: str | os.PathLike[str]) -> LocalJudge:
        """Load weights from a JSON file written by :meth:`save`."""
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read local judge weights ({exc.strerror})") from exc
        except ValueError as exc:
            raise ConfigError(f"{file}: local judge weights are not valid JSON ({exc})") from exc
        return cls.from_dict(data, origin=str(file))

    @classmethod
    def load(cls, name: str = DEFAULT_MODEL) -> LocalJudge:
        """The shipped judge (``local-judge``), a registered one by name, or a ``.json`` path."""
        if name == DEFAULT_MODEL:
            text = resources.files(__package__).joinpath("weights", "local-judge.json")
            return cls.from_dict(json.loads(text.read_text(encoding="utf-8")), origin=name)
        if name.endswith(".json") and Path(name).is_file():
            return cls.load_file(name)
        path = model_path(name)
        if not path.is_file():
            raise ConfigError(
                f"unknown local judge model {name!r} (known: {', '.join(list_models())})"
            )
        return cls.load_file(path)


def register(judge: LocalJudge) -> Path:
    """Save ``judge`` into :func:`models_dir` under its name; return the file written.

    Registering again under the same name replaces the model; the shipped default's name is
    refused so that ``local-judge`` always means the same weights.
    """
    if judge.name == DEFAULT_MODEL:
        raise ConfigError(f"{DEFAULT_MODEL!r} is the shipped model; register under another name")
    return judge.save(model_path(judge.name))
