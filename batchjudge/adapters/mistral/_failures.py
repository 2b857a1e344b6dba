"""The connection failures of every transport (``aiohttp``, :mod:`._http1`, the SDK's
``httpx``), worded once: what a user reads does not depend on the transport that met it.

``what`` names the request ("chat completion", "upload x.jsonl"); ``why`` is the cause in a few
words (:func:`cause` reads it from an exception).
"""

from __future__ import annotations

import os
import ssl

from batchjudge.errors import (
    DisconnectedError,
    ReplyTooLargeError,
    TransientError,
    UnreachableError,
)

__all__ = ["cause", "connect_timeout", "disconnected", "no_reply", "too_large", "unreachable"]


def cause(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words (refused, DNS, TLS)."""
    inner = getattr(exc, "os_error", None) or getattr(exc, "certificate_error", None) or exc.__cause__ or exc
    number = getattr(inner, "errno", None)
    if isinstance(inner, ssl.SSLError):  # its errno is the library's code, not the OS's
        text = f"TLS: {getattr(inner, 'verify_message', None) or getattr(inner, 'reason', None) or inner}"
    elif isinstance(number, int) and number > 0:
        text = os.strerror(number)  # "Connection refused", not asyncio's "Connect call failed"
    else:
        text = getattr(inner, "strerror", None) or str(inner) or type(inner).__name__
    return " ".join(str(text).split())[:200]


def unreachable(what: str, url: str, why: str) -> UnreachableError:
    """No connection could be made to ``url``."""
    return UnreachableError(f"{what}: cannot connect to {url} ({why})", url=url)


def connect_timeout(what: str, url: str, seconds: float) -> UnreachableError:
    """No connection within ``seconds``: an unreachable endpoint, not a slow reply."""
    return unreachable(what, url, f"no answer within {seconds:g} s")


def disconnected(what: str, why: str) -> DisconnectedError:
    """The connection was closed or reset before any byte of the reply."""
    return DisconnectedError(f"{what}: connection lost before any reply: {why}")


def no_reply(what: str, seconds: float) -> TransientError:
    """No (whole) reply within the request's timeout."""
    return TransientError(f"{what}: no reply within {seconds:g} s (timeout)", timed_out=True)


def too_large(what: str, cap: int, declared: int | None = None) -> ReplyTooLargeError:
    """A reply over ``cap`` bytes: ``declared`` by its length header, or found while reading."""
    if declared is not None:
        return ReplyTooLargeError(f"{what}: reply of {declared:,} bytes is over the {cap:,}-byte cap; not read")
    return ReplyTooLargeError(f"{what}: reply over the {cap:,}-byte cap; the rest was not read")
