"""batchjudge: async, high-throughput batch evaluation of LLM judges on the Mistral API.

Importing this package has no side effects and is cheap: the public names below are loaded
from their modules on first use (PEP 562), so ``import batchjudge`` reads, sends and prints
nothing, and the CLI can choose process-wide settings before pyarrow is first imported.

>>> import batchjudge
>>> result = batchjudge.run(batchjudge.RunConfig(inputs=["data.parquet"], out="runs/a"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchjudge.api import run, run_async
    from batchjudge.core.types import (
        JudgeReply,
        JudgeRequest,
        Provider,
        ProviderBase,
        RetryDecision,
        RetryKind,
    )
    from batchjudge.engine.config import RunConfig
    from batchjudge.engine.pipeline import RunResult
    from batchjudge.engine.providers.mock import MockProvider
    from batchjudge.engine.stats import RunStats
    from batchjudge.errors import (
        AuthError,
        BadRequestError,
        BatchJudgeError,
        CheckpointError,
        ConfigError,
        InputError,
        ProviderError,
        RateLimitError,
        ReplyTooLargeError,
        StorageError,
        TransientError,
        UnreachableError,
    )

_EXPORTS: dict[str, str] = {
    "run": "batchjudge.api",
    "RunConfig": "batchjudge.engine.config",
    "MockProvider": "batchjudge.engine.providers.mock",
    "RunResult": "batchjudge.engine.pipeline",
    "run_async": "batchjudge.api",
    "RunStats": "batchjudge.engine.stats",
    **{
        name: "batchjudge.core.types"
        for name in ("JudgeReply", "JudgeRequest", "Provider", "ProviderBase", "RetryDecision", "RetryKind")
    },
    **{
        name: "batchjudge.errors"
        for name in (
            "AuthError", "BadRequestError", "BatchJudgeError", "CheckpointError", "ConfigError",
            "InputError", "ProviderError", "RateLimitError", "ReplyTooLargeError", "StorageError",
            "TransientError", "UnreachableError",
        )
    },
}

__all__ = [
    "AuthError",
    "BadRequestError",
    "BatchJudgeError",
    "CheckpointError",
    "ConfigError",
    "InputError",
    "JudgeReply",
    "JudgeRequest",
    "MockProvider",
    "Provider",
    "ProviderBase",
    "ProviderError",
    "RateLimitError",
    "ReplyTooLargeError",
    "RetryDecision",
    "RetryKind",
    "RunConfig",
    "RunResult",
    "RunStats",
    "StorageError",
    "TransientError",
    "UnreachableError",
    "run",
    "run_async",
]
"""Spelled out for type checkers and linters; a test pins it to the lazy export table."""


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batchjudge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
