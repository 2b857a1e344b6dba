"""How one emulator instance behaves: limits, latency, faults, key, fine-tuning switch."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchjudge.emulator.faults import FaultSpec
from batchjudge.errors import ConfigError

__all__ = ["BASE_MODELS", "EmulatorConfig", "parse_latency"]

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
    if mean < 0 or jitter < 0:
        raise ConfigError(f"--latency-ms: {text!r} must not be negative")
    return mean, jitter


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything an emulator instance is told at start; immutable while it serves."""

    rps: float | None = None
    """Requests per second per API key (a strict 1 s sliding window); None = unlimited."""
    tpm: int | None = None
    """Tokens (prompt + completion) per minute per API key; None = unlimited."""
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
        if self.rps is not None and self.rps <= 0:
            raise ConfigError("--rps must be positive")
        if self.tpm is not None and self.tpm <= 0:
            raise ConfigError("--tpm must be positive")

    def describe(self) -> str:
        """One line for the start banner."""
        parts = [
            f"rps={self.rps or 'unlimited'}",
            f"tpm={self.tpm or 'unlimited'}",
            f"latency={self.latency_ms:g}±{self.jitter_ms:g}ms",
            f"faults={self.faults}",
            f"seed={self.seed}",
            "api-key=required" if self.api_key else "api-key=any",
        ]
        if self.ft_gone:
            parts.append("fine-tuning=410 Gone")
        return " ".join(parts)
