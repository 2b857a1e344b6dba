"""The public surface is what ``batchjudge.__all__`` says, and importing it does nothing else."""

from __future__ import annotations

import subprocess
import sys

import batchjudge

PUBLIC = {
    "AuthError", "BadRequestError", "BatchJudgeError", "CheckpointError", "ConfigError",
    "InputError", "JudgeReply", "JudgeRequest", "MockProvider", "Provider", "ProviderBase",
    "ProviderError", "RateLimitError", "ReplyTooLargeError", "RetryDecision", "RetryKind", "RunConfig",
    "RunResult", "RunStats", "StorageError", "TransientError", "UnreachableError", "run", "run_async",
    "DryRun", "RunStatus", "dry_run", "run_status",
}


def test_all_lists_exactly_the_public_names():
    assert set(batchjudge.__all__) == PUBLIC == set(batchjudge._EXPORTS)
    assert all(hasattr(batchjudge, name) for name in batchjudge.__all__)


def test_importing_batchjudge_prints_nothing_and_loads_no_sdk_or_tracer():
    code = (
        "import sys, batchjudge; "
        "print(sorted(m for m in ('mistralai', 'weave', 'httpx2', 'aiohttp', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]" and out.stderr == ""


def test_every_error_is_a_batchjudge_error():
    for name in ("AuthError", "BadRequestError", "CheckpointError", "ConfigError", "InputError",
                 "ProviderError", "RateLimitError", "ReplyTooLargeError", "StorageError", "TransientError",
                 "UnreachableError"):
        assert issubclass(getattr(batchjudge, name), batchjudge.BatchJudgeError)
