"""Keep credentials out of traces, whatever a record happens to carry.

Two defences: any mapping key that names a credential (``Authorization``, ``api_key``...) has
its value replaced, and any string containing the value of a credential found in the
environment (``MISTRAL_API_KEY``, ``WANDB_API_KEY``, any ``*_API_KEY`` or ``*_TOKEN``) has that
value replaced, so a key echoed into an error message cannot leak either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "Scrubber"]

REDACTED = "[REDACTED]"

_SECRET_KEYS = frozenset(
    {
        "authorization",
        "api_key",
        "apikey",
        "x_api_key",
        "access_token",
        "password",
        "secret",
    }
)
_SECRET_ENV_SUFFIXES = ("API_KEY", "_TOKEN", "_SECRET")
_MIN_SECRET_LEN = 8
"""Shorter values are too likely to occur in ordinary text to be replaced safely."""


def _is_secret_key(key: str) -> bool:
    normalised = key.lower().replace("-", "_")
    return normalised in _SECRET_KEYS or normalised.endswith("_api_key")


class Scrubber:
    """Returns scrubbed copies of JSON-like values; the input is never mutated."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = [s for s in secrets if len(s) >= _MIN_SECRET_LEN]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Scrubber:
        """A scrubber for the credentials present in ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        return cls(
            [v for k, v in env.items() if k.upper().endswith(_SECRET_ENV_SUFFIXES)]
        )

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._scrub_text(value)
        if isinstance(value, Mapping):
            return {
                k: REDACTED if isinstance(k, str) and _is_secret_key(k) else self(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value

    def _scrub_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
