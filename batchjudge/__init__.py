"""batchjudge: async, high-throughput batch evaluation of LLM judges on the Mistral API.

Importing this package has no side effects: nothing is printed, read or sent until a run starts.

>>> import batchjudge
>>> result = batchjudge.run(batchjudge.RunConfig(inputs=["data.parquet"], out="runs/a"))  # doctest: +SKIP
"""

from batchjudge.api import run
from batchjudge.engine.config import RunConfig
from batchjudge.engine.providers.mock import MockProvider
from batchjudge.engine.runner import RunResult, run_async
from batchjudge.engine.stats import RunStats
from batchjudge.engine.types import JudgeReply, JudgeRequest, Provider, ProviderBase, RetryDecision, RetryKind
from batchjudge.errors import (
    AuthError,
    BadRequestError,
    BatchJudgeError,
    CheckpointError,
    ConfigError,
    InputError,
    ProviderError,
    RateLimitError,
    TransientError,
)

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
    "RetryDecision",
    "RetryKind",
    "RunConfig",
    "RunResult",
    "RunStats",
    "TransientError",
    "run",
    "run_async",
]
