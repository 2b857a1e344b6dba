"""Deterministic trace sampling by row id, so a resumed run traces the same rows."""

from __future__ import annotations

import hashlib

from batchjudge.errors import ConfigError

__all__ = ["check_sample_rate", "is_sampled"]

_SCALE = float(1 << 64)


def check_sample_rate(rate: float) -> float:
    """Return ``rate`` if it is a fraction in (0, 1]; raise :class:`ConfigError` otherwise."""
    if not 0.0 < rate <= 1.0:
        raise ConfigError(f"--trace-sample {rate}: expected a fraction in (0, 1]")
    return rate


def is_sampled(row_id: str, rate: float) -> bool:
    """Whether ``row_id`` is traced at ``rate``: a pure function of both, stable across
    processes and machines (a keyed hash, not Python's salted ``hash``)."""
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(row_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE < rate
