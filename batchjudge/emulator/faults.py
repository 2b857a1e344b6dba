"""Fault injection: which failure, if any, the emulator plays for one request.

A spec is a comma-separated list of ``KIND:PROBABILITY`` pairs, e.g.
``500:0.05,drop:0.02,slow:0.02,malformed:0.02,nonjson:0.01,400:0.01``. A kind is an HTTP
status (400–599, answered with an API-style error body), one of :data:`NAMED_FAULTS`, or
``retry-after=SECONDS`` (a 429 telling the client to wait that long, e.g. a day: 86400), or
``stall=MS`` (the server's event loop stops for MS milliseconds before it answers that request
normally: the requests arriving meanwhile are stamped late and together, as a garbage
collection or a busy machine does to a real server; :mod:`batchjudge.engine.stalls`).
Each request draws at most one fault from a seeded RNG, so a run is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from batchjudge.errors import ConfigError

__all__ = ["NAMED_FAULTS", "RETRY_AFTER", "STALL", "FaultSpec", "long_wait", "stall_seconds"]

NAMED_FAULTS: dict[str, str] = {
    "drop": "the connection is closed in the middle of the reply",
    "slow": "the reply is held until the client gives up (longer than any sane timeout)",
    "malformed": "200 with a JSON body that breaks the chat completion schema",
    "nonjson": "200 with an HTML body, as a misconfigured proxy would send",
    "echo": "an error (400, 401, 422, 500, then a plain-text 400, in turn) whose body echoes "
    "the request's headers, Authorization included",
    "huge": "200 with a valid chat completion of about 10 MB",
}
RETRY_AFTER = "retry-after"
"""The parametrised kind ``retry-after=SECONDS``: a 429 with that Retry-After."""


STALL = "stall"
"""The parametrised kind ``stall=MS``: the server's loop stops for MS milliseconds."""
_UNITS = {RETRY_AFTER: ("seconds", 1.0), STALL: ("milliseconds", 0.001)}
"""The parametrised kinds: what their number counts, and its size in seconds."""


def _parameter(kind: str, name: str) -> float | None:
    """The number of a ``name=NUMBER`` kind, in seconds; ``None`` for any other kind."""
    head, sep, value = kind.partition("=")
    return float(value) * _UNITS[name][1] if sep and head == name else None


def long_wait(kind: str) -> float | None:
    """The seconds of a ``retry-after=SECONDS`` kind, ``None`` for any other kind."""
    return _parameter(kind, RETRY_AFTER)


def stall_seconds(kind: str) -> float | None:
    """The seconds of a ``stall=MS`` kind, ``None`` for any other kind."""
    return _parameter(kind, STALL)


def _check_kind(kind: str) -> str:
    """The kind in its canonical spelling; ConfigError naming it if it is unknown."""
    name, sep, value = kind.partition("=")
    if sep and name in _UNITS:
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not number > 0 or number == float("inf"):
            raise ConfigError(f"--faults: {kind!r} needs a positive number of {_UNITS[name][0]}")
        return f"{name}={number:g}"
    if kind in NAMED_FAULTS or (kind.isdigit() and 400 <= int(kind) <= 599):
        return kind
    known = ", ".join(NAMED_FAULTS)
    raise ConfigError(
        f"--faults: unknown fault {kind!r} (an HTTP status 400-599, one of {known}, "
        f"{RETRY_AFTER}=SECONDS or {STALL}=MS)"
    )


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Fault kinds with their probabilities; the empty spec injects nothing."""

    entries: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        """Read ``KIND:P,KIND:P``; raise :class:`ConfigError` naming the bad part."""
        if not spec or not spec.strip():
            return cls()
        entries: list[tuple[str, float]] = []
        for part in spec.split(","):
            kind, sep, prob_text = part.strip().partition(":")
            kind = kind.strip().lower()
            if not sep:
                raise ConfigError(f"--faults: {part.strip()!r} is not KIND:PROBABILITY")
            kind = _check_kind(kind)
            try:
                prob = float(prob_text)
            except ValueError:
                raise ConfigError(f"--faults: {prob_text!r} is not a probability") from None
            if not 0.0 <= prob <= 1.0:
                raise ConfigError(f"--faults: probability of {kind} must be in [0, 1]")
            entries.append((kind, prob))
        if sum(p for _, p in entries) > 1.0 + 1e-9:
            raise ConfigError("--faults: the probabilities add up to more than 1")
        return cls(tuple(entries))

    def draw(self, rng: random.Random) -> str | None:
        """One fault kind for the next request, or ``None`` for a normal reply."""
        if not self.entries:
            return None
        u = rng.random()
        for kind, prob in self.entries:
            if u < prob:
                return kind
            u -= prob
        return None

    def __str__(self) -> str:
        return ",".join(f"{kind}:{prob:g}" for kind, prob in self.entries) or "none"
