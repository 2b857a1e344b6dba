"""Scale out on Ray: ``batchjudge run --engine ray`` and a judge step for Ray Data pipelines.

- :class:`RayEngine` runs a whole ``batchjudge run`` on a Ray cluster (a local one by default):
  the same inputs, results, run directory, ``report`` and resume as the single-process run.
- :func:`judge` adds the judge's result columns to a user's ``ray.data.Dataset``.

Both build each worker from the engine's own steps and share one limiter per endpoint, so
``--rps``/``--tpm`` stay the organization's limit however many workers there are. Ray is an
optional extra (``pip install "batchjudge[ray]"``): the names below are loaded on first use,
and without Ray that raises a ConfigError saying how to install it. The limiter and the worker
themselves (``_limiter``, ``_leased``, ``_worker``) do not need Ray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batchjudge.errors import ConfigError

if TYPE_CHECKING:
    from batchjudge.ray._engine import RayEngine
    from batchjudge.ray._step import judge

__all__ = ["RayEngine", "judge"]

_EXPORTS = {"RayEngine": "batchjudge.ray._engine", "judge": "batchjudge.ray._step"}
MISSING = '--engine ray needs Ray, which is not installed: pip install "batchjudge[ray]"'
"""What a user without the extra is told."""


def __getattr__(name: str) -> Any:
    """Load a public name on first access; say how to install Ray when it is missing."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batchjudge.ray' has no attribute {name!r}")
    try:
        importlib.import_module("ray")
    except ImportError as exc:
        raise ConfigError(MISSING) from exc
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
