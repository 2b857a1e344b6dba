"""``MockProvider``: a provider driven by a handler function, for tests and benchmarks.

Like httpx's ``MockTransport``, the double is part of the product: users test their
pipelines with it, and the engine's own retry, cooldown and overhead measurements use it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from batchjudge.core.types import JudgeReply, JudgeRequest, ProviderBase

__all__ = ["MockProvider"]

Handler = Callable[[JudgeRequest], "JudgeReply | Awaitable[JudgeReply]"]


class MockProvider(ProviderBase):
    """Answers each request with ``handler(request)`` (sync or async).

    With ``record=True`` every request is kept in :attr:`calls` (turn it off for big runs).
    """

    name = "mock"

    def __init__(self, handler: Handler, *, record: bool = True) -> None:
        self._handler = handler
        self._record = record
        self.calls: list[JudgeRequest] = []

    async def judge(self, request: JudgeRequest) -> JudgeReply:
        if self._record:
            self.calls.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result
