"""The one exception tree of batchjudge.

Every error a user or a calling pipeline can see is one of these; errors from the SDK,
the HTTP library or pyarrow are translated at the boundary (``raise ... from exc``). Each one
pickles with its attributes (``--engine ray`` carries them between processes)::

    BatchJudgeError
    ├── ConfigError            bad options or a refused resume           (exit 2)
    ├── InputError             a missing/unreadable file, column, type   (exit 2)
    ├── CheckpointError        a run directory that cannot be used as is (exit 2)
    ├── StorageError           the disk refused: full, read-only, denied (exit 1)
    ├── EngineError            the distributed engine failed (a cluster lost): run again
    └── ProviderError          a call to a judge failed
        ├── RateLimitError     429: retryable, may carry ``retry_after`` seconds
        ├── TransientError     5xx, timeouts, dropped connections: retryable
        │   ├── UnreachableError   no connection at all (refused, DNS, TLS): an outage
        │   └── DisconnectedError  reset or closed before any reply: a run of them is an outage
        ├── AuthError          401/403 or no key: stops the whole run, nothing marked done
        ├── BadRequestError    other 4xx: fails the row at once
        │   └── RequestRejectedError  the first rows all refused alike: stops the run (exit 2)
        ├── ReplyTooLargeError a reply over the size cap: fails the row, the rest unread
        ├── QuotaExhaustedError the organization's monthly tokens are spent: stops the run
        └── LimitTooLowError   the server's rate limit is below --min-rps: stops the run
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "AuthError",
    "BadRequestError",
    "BatchJudgeError",
    "CheckpointError",
    "ConfigError",
    "DisconnectedError",
    "EngineError",
    "InputError",
    "LimitTooLowError",
    "ProviderError",
    "QuotaExhaustedError",
    "RateLimitError",
    "ReplyTooLargeError",
    "RequestRejectedError",
    "StorageError",
    "TransientError",
    "UnreachableError",
    "first_line",
]


class BatchJudgeError(Exception):
    """Base of every error batchjudge raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its message and attributes, whatever its constructor's keywords."""
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[BatchJudgeError], args: tuple[Any, ...], state: dict[str, Any]) -> BatchJudgeError:
    """An error of class ``cls`` with ``args`` and attributes ``state``, not calling its
    ``__init__`` (whose keywords the pickle does not know)."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigError(BatchJudgeError):
    """Options that cannot work together, or a resume that would mix two configurations."""


class InputError(BatchJudgeError):
    """Input data that cannot be read as asked; the message names the file, row or column."""


class CheckpointError(BatchJudgeError):
    """A run directory that cannot be used as it is: locked by another run, not a batchjudge
    run, or holding results that do not check out (a foreign or corrupt file, a row twice)."""


class StorageError(BatchJudgeError):
    """The file system refused a read or write (full disk, read-only, permission denied).

    The message names the path, the cause and what to do; nothing is half-written, and the
    same command resumes once the cause is fixed. ``path`` is the file or folder concerned.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class EngineError(BatchJudgeError):
    """The distributed engine could not go on (a cluster that stopped, a worker that kept
    failing); what was committed stays, and the same command resumes."""


class ProviderError(BatchJudgeError):
    """A judge call failed. ``status`` is the HTTP status when there was one; ``headers`` are
    the reply's rate-limit headers (lower-case names), which the engine learns limits from."""

    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimitError(ProviderError):
    """The provider said 429. ``retry_after`` (seconds) is obeyed exactly when given."""

    def __init__(
        self, message: str, *, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """A failure worth retrying: 5xx, a timeout, a dropped connection, a garbled reply.
    ``timed_out`` says no reply came within the request's timeout."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.timed_out = timed_out


class AuthError(ProviderError):
    """The API key is missing or rejected: no further request can succeed."""


class BadRequestError(ProviderError):
    """A 4xx other than 401/403/408/429: this row will never succeed as sent."""


class RequestRejectedError(BadRequestError):
    """The first rows of a run were all refused with the same 4xx before any was answered
    (:mod:`batchjudge.engine.request_errors`): the request is wrong (an unknown model, a
    refused parameter, no access), not the rows. Stops the run, exit 2, nothing marked failed."""


class UnreachableError(TransientError):
    """No connection could be made (refused, DNS, TLS): the endpoint, not the row, is at fault.

    ``url`` names the endpoint; the engine treats a run of these as an outage, not as failures
    of the rows that happened to be in flight.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class DisconnectedError(TransientError):
    """The connection was reset or closed before any reply came (a server restarting, a load
    balancer with no backend). One is retried like any transient failure; several in a row
    with no answer in between are an outage, which the engine waits out like an unreachable
    endpoint."""


class ReplyTooLargeError(ProviderError):
    """A reply larger than the client's cap; the rest of it was not read."""


class QuotaExhaustedError(ProviderError):
    """The organization's monthly token budget is spent: no request can succeed until it is
    renewed, so the run stops (resumable) instead of retrying."""


class LimitTooLowError(ProviderError):
    """The server announced (or its 429s showed) a rate limit below the run's ``--min-rps``:
    at that pace the run would crawl for hours, so it stops (exit 1, resumable) saying the
    server's figure instead."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message, or its class name when it has none: how an
    error from a library is quoted inside one of ours (one line, never a traceback)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
