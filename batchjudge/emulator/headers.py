"""How a reply announces the rate limits: the header shapes ``--headers`` selects.

A shape names some windows and not others; a window it has no name for is still enforced,
just not announced (the hosted API enforces a per-second limit its 2026 headers never name).

``mistral`` (the default with ``--api mistral``; the hosted API's 2026 headers, as reported in
mistralai/client-ts issue 169)::

    x-ratelimit-limit-req-minute / x-ratelimit-remaining-req-minute          (--rpm)
    x-ratelimit-limit-tokens-minute / x-ratelimit-remaining-tokens-minute    (--tpm)
    x-ratelimit-limit-tokens-month / x-ratelimit-remaining-tokens-month      (--tokens-per-month)
    x-ratelimit-tokens-query-cost: tokens this request was charged (when a token limit is set)
    Retry-After: whole seconds, on a 429 that waiting can cure

``second`` (the emulator's earlier shape): everything ``mistral`` sends plus
``x-ratelimit-limit-req-second`` / ``x-ratelimit-remaining-req-second`` (``--rps``) and a
precise ``retry-after-ms`` beside ``Retry-After``.

``bysize`` (the hosted API's older headers, tokens only)::

    ratelimitbysize-limit / ratelimitbysize-remaining       the tokens-minute window
    ratelimitbysize-reset                                   seconds until it is full again
    ratelimitbysize-query-cost                              tokens this request was charged
    x-ratelimitbysize-limit-minute / x-ratelimitbysize-remaining-minute
    x-ratelimitbysize-limit-month / x-ratelimitbysize-remaining-month
    Retry-After

``openai`` (the default with ``--api openai``; OpenAI's names, per-minute windows)::

    x-ratelimit-limit-requests / x-ratelimit-remaining-requests / x-ratelimit-reset-requests
    x-ratelimit-limit-tokens / x-ratelimit-remaining-tokens / x-ratelimit-reset-tokens
    (resets as durations: "120ms", "1.5s", "6m0s"), Retry-After

``none``: nothing at all, not even ``Retry-After`` (a server that announces nothing).

Remaining counts are taken after this request was charged. Month headers and ``-req-minute``
appear only when that limit is set; with no limits set, no shape sends anything but
``Retry-After``.

Sources: the minute names and the query cost are quoted from a real reply in client-ts#169
(a short request without ``max_tokens`` cost 52 tokens, so the cost is the request's real
total, not prompt + ``max_tokens``); ``x-ratelimit-*-tokens-month`` is named by analogy
(promptfoo#10577 reports ``x-ratelimit-*-month`` headers without quoting them); the
``ratelimitbysize`` family is as client code parsing it reads it (``ratelimitbysize-reset``
in seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from batchjudge.emulator.limits import (
    REQUESTS_MINUTE,
    REQUESTS_SECOND,
    TOKENS_MINUTE,
    TOKENS_MONTH,
    Reading,
)

__all__ = ["DEFAULT_SHAPES", "HEADER_SHAPES", "rate_headers", "retry_headers"]

HEADER_SHAPES: tuple[str, ...] = ("mistral", "second", "bysize", "openai", "none")
DEFAULT_SHAPES: dict[str, str] = {"mistral": "mistral", "openai": "openai"}
"""The shape each ``--api`` uses unless ``--headers`` says otherwise."""


def _names(prefix: str, suffixes: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Per window: its (limit, remaining) header names, ``PREFIX-limit-SUFFIX`` and so on."""
    return {
        window: (f"{prefix}-limit-{suffix}", f"{prefix}-remaining-{suffix}")
        for window, suffix in suffixes.items()
    }


_MISTRAL_SUFFIXES = {
    REQUESTS_MINUTE: "req-minute",
    TOKENS_MINUTE: "tokens-minute",
    TOKENS_MONTH: "tokens-month",
}
_MISTRAL_NAMES = _names("x-ratelimit", _MISTRAL_SUFFIXES)
_SECOND_NAMES = _names("x-ratelimit", {REQUESTS_SECOND: "req-second", **_MISTRAL_SUFFIXES})
_BYSIZE_NAMES = _names("x-ratelimitbysize", {TOKENS_MINUTE: "minute", TOKENS_MONTH: "month"})
_OPENAI_SUFFIXES = {REQUESTS_MINUTE: "requests", TOKENS_MINUTE: "tokens"}
_OPENAI_NAMES = _names("x-ratelimit", _OPENAI_SUFFIXES)


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``"120ms"``, ``"1.5s"``, ``"6m0s"``."""
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60.0:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def _named(readings: Iterable[Reading], names: dict[str, tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for reading in readings:
        pair = names.get(reading.window)
        if pair is not None:
            headers[pair[0]] = str(reading.limit)
            headers[pair[1]] = str(reading.remaining)
    return headers


def rate_headers(shape: str, readings: list[Reading], cost: int | None) -> dict[str, str]:
    """The rate-limit headers of one reply; ``cost`` is the tokens it was charged, if any."""
    if shape in ("mistral", "second"):
        names = _SECOND_NAMES if shape == "second" else _MISTRAL_NAMES
        headers = _named(readings, names)
        if cost is not None:
            headers["x-ratelimit-tokens-query-cost"] = str(cost)
        return headers
    if shape == "bysize":
        headers = _named(readings, _BYSIZE_NAMES)
        for reading in readings:
            if reading.window == TOKENS_MINUTE:
                headers["ratelimitbysize-limit"] = str(reading.limit)
                headers["ratelimitbysize-remaining"] = str(reading.remaining)
                headers["ratelimitbysize-reset"] = str(math.ceil(reading.empty_in_s))
        if cost is not None:
            headers["ratelimitbysize-query-cost"] = str(cost)
        return headers
    if shape == "openai":
        headers = _named(readings, _OPENAI_NAMES)
        for reading in readings:
            suffix = _OPENAI_SUFFIXES.get(reading.window)
            if suffix is not None:
                headers[f"x-ratelimit-reset-{suffix}"] = _duration(reading.empty_in_s)
        return headers
    return {}


def retry_headers(shape: str, wait_s: float) -> tuple[dict[str, str], float]:
    """The headers telling a refused client how long to wait, and the wait they announce.

    Whole seconds (rounded up, at least 1) in ``Retry-After``; ``second`` adds the exact
    ``retry-after-ms``. Nothing when waiting cannot help (``wait_s`` infinite) or the shape is
    ``none``; the announced wait is then 0.
    """
    if shape == "none" or math.isinf(wait_s):
        return {}, 0.0
    whole = max(1, math.ceil(wait_s))
    headers = {"retry-after": str(whole)}
    if shape == "second":
        millis = max(1, math.ceil(wait_s * 1000.0))
        headers["retry-after-ms"] = str(millis)
        return headers, millis / 1000.0
    return headers, float(whole)
