"""How one emulator instance behaves: API, limits, headers, latency, faults, outages, key."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from batchjudge.emulator.faults import FaultSpec
from batchjudge.emulator.headers import DEFAULT_SHAPES, HEADER_SHAPES
from batchjudge.emulator.limits import Limits
from batchjudge.errors import ConfigError

__all__ = ["APIS", "BASE_MODELS", "EmulatorConfig", "parse_latency"]

APIS: tuple[str, ...] = ("mistral", "openai")
"""The APIs ``--api`` can speak (see :mod:`batchjudge.emulator.dialects`)."""

BASE_MODELS: tuple[str, ...] = (
    "mistral-small-latest",
    "mistral-medium-latest",
    "mistral-large-latest",
    "ministral-8b-latest",
    "open-mistral-7b",
    "open-mistral-nemo",
)
"""Models the emulator lists and answers for (fine-tuned ones are added as they are trained)."""


def parse_latency(text: str) -> tuple[float, float]:
    """``MEAN[:JITTER]`` in milliseconds → ``(mean, jitter)``; raise ConfigError if unreadable."""
    mean_text, _, jitter_text = text.partition(":")
    try:
        mean = float(mean_text)
        jitter = float(jitter_text) if jitter_text else 0.0
    except ValueError:
        raise ConfigError(f"--latency-ms: {text!r} is not MEAN[:JITTER] in milliseconds") from None
    if not (0 <= mean < math.inf and 0 <= jitter < math.inf):
        raise ConfigError(f"--latency-ms: {text!r} must be finite numbers, not negative")
    return mean, jitter


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything an emulator instance is told at start; immutable while it serves."""

    rps: float | None = None
    """Requests per second per API key (a strict rolling 1 s window on arrivals; a fraction is
    rounded down, to at least 1); None = unlimited."""
    rpm: int | None = None
    """Requests per minute per API key (a strict rolling 60 s window); None = unlimited."""
    tpm: int | None = None
    """Tokens (prompt + completion) per minute per API key; None = unlimited."""
    tokens_per_month: int | None = None
    """Tokens per API key for the server's life (the month); None = unlimited."""
    api: str = "mistral"
    """Which API to speak: ``mistral`` or ``openai`` (chat completions and models only)."""
    headers: str | None = None
    """Rate-limit header shape (:data:`~batchjudge.emulator.headers.HEADER_SHAPES`); None =
    the API's own (``mistral`` or ``openai``)."""
    outage: tuple[float, float] | None = None
    """``(at, for)``: refuse every connection for ``for`` seconds, ``at`` seconds after the
    first request."""
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    """Each admitted chat call waits ``latency_ms ± jitter_ms`` (uniform) before answering."""
    faults: FaultSpec = field(default_factory=FaultSpec)
    seed: int = 0
    """Seeds latency and fault draws, so a run against the emulator is reproducible."""
    api_key: str | None = None
    """When set, any other key (or none) gets 401; when None every key is accepted."""
    ft_gone: bool = False
    """Answer ``/v1/fine_tuning/jobs`` with 410 Gone, as the hosted API does since mid-2026."""
    slow_s: float = 600.0
    """How long a ``slow`` fault holds a reply (it ends earlier if the client disconnects)."""
    queue_s: float = 0.2
    """How long a new batch or fine-tuning job stays ``QUEUED`` before it runs (so it can be
    cancelled, and clients see the same states as on the hosted API)."""

    def __post_init__(self) -> None:
        if self.rps is not None and not (0 < self.rps < math.inf):
            raise ConfigError("--rps must be positive")
        for option, value in (
            ("--rpm", self.rpm),
            ("--tpm", self.tpm),
            ("--tokens-per-month", self.tokens_per_month),
        ):
            if value is not None and value <= 0:
                raise ConfigError(f"{option} must be positive")
        if self.api not in APIS:
            raise ConfigError(f"--api: {self.api!r} is not one of {', '.join(APIS)}")
        if self.headers is not None and self.headers not in HEADER_SHAPES:
            shapes = ", ".join(HEADER_SHAPES)
            raise ConfigError(f"--headers: {self.headers!r} is not one of {shapes}")

    @property
    def header_shape(self) -> str:
        """The rate-limit header shape in use."""
        return self.headers or DEFAULT_SHAPES[self.api]

    def limits(self) -> Limits:
        """The per-key limits (``--rps`` rounded down to a whole number, at least 1)."""
        rps = max(1, int(self.rps)) if self.rps is not None else None
        return Limits(rps=rps, rpm=self.rpm, tpm=self.tpm, tokens_per_month=self.tokens_per_month)

    def describe(self) -> str:
        """One line for the start banner."""
        parts = [
            f"api={self.api}",
            f"rps={self.rps or 'unlimited'}",
            f"rpm={self.rpm or 'unlimited'}",
            f"tpm={self.tpm or 'unlimited'}",
            f"tokens-per-month={self.tokens_per_month or 'unlimited'}",
            f"headers={self.header_shape}",
            f"latency={self.latency_ms:g}±{self.jitter_ms:g}ms",
            f"faults={self.faults}",
            f"seed={self.seed}",
            "api-key=required" if self.api_key else "api-key=any",
        ]
        if self.outage is not None:
            parts.append(f"outage={self.outage[0]:g}s+{self.outage[1]:g}s")
        if self.ft_gone:
            parts.append("fine-tuning=410 Gone")
        return " ".join(parts)
