"""The synchronous entry point beside :func:`batchjudge.engine.runner.run_async`."""

from __future__ import annotations

import functools
from typing import Any

import anyio

from batchjudge.engine.config import RunConfig
from batchjudge.engine.runner import RunResult, run_async

__all__ = ["run"]


def run(config: RunConfig, **options: Any) -> RunResult:
    """Run ``config`` to the end in a fresh event loop (see :func:`run_async` for options).

    From inside an async program, ``await batchjudge.run_async(config)`` instead.
    """
    return anyio.run(functools.partial(run_async, config, **options))
