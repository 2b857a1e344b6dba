"""The small data types and protocols every part of the engine speaks.

A provider turns one :class:`JudgeRequest` into one :class:`JudgeReply` (or raises one of
:mod:`batchjudge.errors`' provider errors) and says, for each error, whether the engine should
retry it (:class:`RetryDecision`); the engine alone retries and limits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from batchjudge.errors import (
    AuthError,
    BadRequestError,
    QuotaExhaustedError,
    RateLimitError,
    TransientError,
)

__all__ = [
    "JudgeReply",
    "JudgeRequest",
    "Message",
    "Provider",
    "ProviderBase",
    "RetryDecision",
    "RetryKind",
]

Message = dict[str, str]
"""One chat message: ``{"role": "system"|"user"|"assistant", "content": "..."}``."""


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    """Everything a provider needs to judge one row.

    ``messages`` is the rendered prompt; ``premise`` and ``hypothesis`` are the raw fields
    (the local judge reads them directly instead of re-parsing the prompt).
    """

    row_id: str
    messages: list[Message]
    premise: str
    hypothesis: str
    model: str
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    prompt_tokens: int = 0
    """Counted (or estimated) prompt tokens, used to charge the TPM bucket before sending."""


@dataclass(slots=True)
class JudgeReply:
    """A provider's answer: the raw text (parsed later by the prompt adapter) and usage."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    """Response headers worth keeping (``x-ratelimit-*``), lower-cased."""


class RetryKind(enum.Enum):
    """How the engine should treat a failed call."""

    NO = "no"
    TRANSIENT = "transient"
    RATE_LIMIT = "rate_limit"
    FATAL = "fatal"
    """Stop the whole run (a rejected API key): nothing more can succeed."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """The provider's verdict on an exception: retry or not, and how long to wait at least."""

    kind: RetryKind
    retry_after: float | None = None


@runtime_checkable
class Provider(Protocol):
    """One judge backend. Implementations live one per module in ``engine/providers``."""

    name: str

    async def judge(self, request: JudgeRequest) -> JudgeReply:
        """Send one request; raise a :class:`~batchjudge.errors.ProviderError` on failure."""
        ...

    def should_retry(self, exc: BaseException) -> RetryDecision:
        """Classify an exception raised by :meth:`judge`."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the run ends."""
        ...


class ProviderBase:
    """Defaults for the :class:`Provider` hooks, mapping batchjudge's error tree."""

    name: str = "base"

    async def judge(self, request: JudgeRequest) -> JudgeReply:  # pragma: no cover - abstract
        raise NotImplementedError

    def should_retry(self, exc: BaseException) -> RetryDecision:
        """429 waits, 5xx/timeouts retry, a bad key stops the run, other errors fail the row."""
        if isinstance(exc, RateLimitError):
            return RetryDecision(RetryKind.RATE_LIMIT, exc.retry_after)
        if isinstance(exc, TransientError):
            return RetryDecision(RetryKind.TRANSIENT, exc.retry_after)
        if isinstance(exc, (AuthError, QuotaExhaustedError)):
            return RetryDecision(RetryKind.FATAL)
        if isinstance(exc, BadRequestError):
            return RetryDecision(RetryKind.NO)
        if isinstance(exc, (TimeoutError, ConnectionError)):
            return RetryDecision(RetryKind.TRANSIENT)
        return RetryDecision(RetryKind.NO)

    async def aclose(self) -> None:
        return None
