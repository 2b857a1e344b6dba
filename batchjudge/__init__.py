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
    from batchjudge.api import dry_run, run, run_async, run_status
    from batchjudge.core.types import (
        JudgeReply,
        JudgeRequest,
        Provider,
        ProviderBase,
        RetryDecision,
        RetryKind,
    )
    from batchjudge.engine.config import RunConfig
    from batchjudge.engine.dryrun import DryRun
    from batchjudge.engine.pipeline import RunResult
    from batchjudge.engine.providers.mock import MockProvider
    from batchjudge.engine.stats import RunStats
    from batchjudge.engine.status import RunStatus
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
    "dry_run": "batchjudge.api",
    "run_status": "batchjudge.api",
    "DryRun": "batchjudge.engine.dryrun",
    "RunStats": "batchjudge.engine.stats",
    "RunStatus": "batchjudge.engine.status",
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
    "DryRun",
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
    "RunStatus",
    "StorageError",
    "TransientError",
    "UnreachableError",
    "dry_run",
    "run",
    "run_async",
    "run_status",
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
    """The public names only: ``dir(batchjudge)`` is how people explore a package, and the
    module's own helpers (``importlib``, ``TYPE_CHECKING``, ``Any``) are none of theirs."""
    return sorted(__all__)
