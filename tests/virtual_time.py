"""Virtual time for tests of limits, waits and retries: trio's ``MockClock`` under anyio.

With ``autojump_threshold=0`` the clock jumps to the next deadline whenever every task is
waiting, so a test of a 60-second token window or a 2-second ``Retry-After`` runs in
milliseconds with exactly the ordering real time would give. The engine takes its clock and
sleep as arguments; under this helper they are ``anyio.current_time`` and ``anyio.sleep``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from trio.testing import MockClock

from batchjudge import RunConfig, RunResult, run_async

T = TypeVar("T")

clock = anyio.current_time
"""The clock to give the engine under :func:`run_virtual`."""
sleep = anyio.sleep
"""The sleep to give the engine under :func:`run_virtual`."""


def run_virtual(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``fn(*args)`` on the trio backend with a mock clock that jumps when all wait."""
    return anyio.run(fn, *args, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})


def run_engine_virtual(config: RunConfig, **options: Any) -> RunResult:
    """``batchjudge.run`` on virtual time: every limit, wait and retry costs no real time."""
    return run_virtual(functools.partial(run_async, config, clock=clock, sleep=sleep, **options))
