"""Fixtures for tests that talk to the emulator (import them: ``from emulator_fixtures import *``).

Kept out of ``conftest.py`` (shared by the whole suite) on purpose: only the emulator, provider,
end-to-end and chaos tests need them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral

from batchjudge.adapters.prompts import PRESETS, PromptAdapter
from batchjudge.core.types import JudgeRequest
from batchjudge.emulator import EmulatorConfig, EmulatorServer, FaultSpec

__all__ = [
    "MODEL",
    "TEST_KEY",
    "StartEmulator",
    "FakeClock",
    "batchjudge_cli",
    "cli_command",
    "emulator",
    "judge_requests",
    "sdk_over_asgi",
    "sdk_over_http",
]

TEST_KEY = "test-key-not-secret"
MODEL = "mistral-small-latest"
StartEmulator = Callable[..., EmulatorServer]
"""What the ``emulator`` fixture is: call it to start one, with the config's fields as options."""


class FakeClock:
    """A monotonic clock the test moves by hand (``clock.now += 1.0``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _config(**options: Any) -> EmulatorConfig:
    faults = options.pop("faults", "")
    return EmulatorConfig(faults=FaultSpec.parse(faults), **options)


@pytest.fixture
def emulator() -> Iterator[StartEmulator]:
    """Start emulators over real HTTP on free ports: ``emulator(rps=5, faults="500:0.1")``.

    ``clock=FakeClock()`` makes the limits and outages read that clock instead of the real one.
    """
    servers: list[EmulatorServer] = []

    def start(**options: Any) -> EmulatorServer:
        clock = options.pop("clock", None)
        app_options = {} if clock is None else {"clock": clock}
        server = EmulatorServer(_config(**options), **app_options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def sdk_over_asgi(app: Any, api_key: str = TEST_KEY) -> Mistral:
    """The official SDK wired to an in-process emulator app (no sockets)."""
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://emulator")
    return Mistral(
        api_key=api_key, server_url="http://emulator", async_client=http, retry_config=None
    )


def sdk_over_http(url: str, api_key: str = TEST_KEY) -> Mistral:
    """The official SDK pointed at an emulator served over real HTTP."""
    return Mistral(api_key=api_key, server_url=url, retry_config=None)


def judge_requests(
    n: int, *, preset: str = "zero-shot", response_format: Any = "template"
) -> list[JudgeRequest]:
    """``n`` requests rendered with a real prompt preset; half the summaries invent a number."""
    template = PRESETS[preset]
    adapter = PromptAdapter(template, MODEL)
    fmt = template.response_format if response_format == "template" else response_format
    requests = []
    for i in range(n):
        premise = f"Report {i}: the council approved {i + 3} new homes in Leeds on Monday."
        hypothesis = (
            f"The council approved {i + 3} new homes."
            if i % 2 == 0
            else f"The council approved {i + 700} new homes."
        )
        rendered = adapter.render(premise, hypothesis)
        requests.append(
            JudgeRequest(
                row_id=f"row-{i}",
                messages=rendered.messages,
                premise=premise,
                hypothesis=hypothesis,
                model=MODEL,
                response_format=fmt,
                prompt_tokens=rendered.prompt_tokens,
            )
        )
    return requests


def cli_command() -> list[str]:
    """How to start the CLI: the installed console script, else ``python -m batchjudge``."""
    exe = shutil.which("batchjudge", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "batchjudge"]


def batchjudge_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``batchjudge ARGS...`` in a subprocess (the installed console script if any)."""
    full_env = {**os.environ, "WEAVE_DISABLED": "true", "WANDB_ERROR_REPORTING": "false"}
    full_env.update(env or {})
    return subprocess.run(
        [*cli_command(), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
