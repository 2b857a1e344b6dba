"""What a server says about its rate limits, read from the headers of each reply.

Mistral announces its limits per organization on every reply; the engine adopts them when no
flag sets them (:class:`~batchjudge.engine.limits.Limits`). The families read here:

- Mistral, 2026 (mistralai/client-ts issue 169): ``x-ratelimit-limit-req-minute`` /
  ``x-ratelimit-remaining-req-minute``, ``x-ratelimit-limit-tokens-minute`` /
  ``x-ratelimit-remaining-tokens-minute``, ``x-ratelimit-limit-tokens-month`` /
  ``x-ratelimit-remaining-tokens-month``, ``x-ratelimit-tokens-query-cost``; some servers also
  send ``x-ratelimit-limit-req-second`` / ``x-ratelimit-remaining-req-second``.
- Mistral, older: ``ratelimitbysize-limit`` / ``ratelimitbysize-remaining`` (tokens a minute),
  ``x-ratelimitbysize-{limit,remaining}-{minute,month}``, ``ratelimitbysize-query-cost``.
- OpenAI-compatible servers: ``x-ratelimit-{limit,remaining}-requests`` and
  ``x-ratelimit-{limit,remaining}-tokens``, both per minute.

Remaining counts include the request being answered. A value that does not parse as a
number is ignored, never an error: headers are advice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Announced", "Quota", "read_rate_headers"]


@dataclass(frozen=True, slots=True)
class Quota:
    """One announced window: its limit and what remains of it (None when not said)."""

    limit: float
    remaining: float | None = None
    header: str = field(default="", compare=False)
    """The header that announced the limit (to name it when the limit cannot be obeyed)."""


@dataclass(frozen=True, slots=True)
class Announced:
    """The limits one reply announced; a window it did not name is None."""

    requests_second: Quota | None = None
    requests_minute: Quota | None = None
    tokens_minute: Quota | None = None
    tokens_month: Quota | None = None
    query_cost: float | None = None
    """Tokens this request was charged, as the server counted them."""

    @property
    def empty(self) -> bool:
        """Whether the reply announced nothing at all."""
        return self == _NOTHING


_NOTHING = Announced()

_WINDOWS: dict[str, tuple[tuple[str, str], ...]] = {
    "requests_second": (("x-ratelimit-limit-req-second", "x-ratelimit-remaining-req-second"),),
    "requests_minute": (
        ("x-ratelimit-limit-req-minute", "x-ratelimit-remaining-req-minute"),
        ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests"),
    ),
    "tokens_minute": (
        ("x-ratelimit-limit-tokens-minute", "x-ratelimit-remaining-tokens-minute"),
        ("ratelimitbysize-limit", "ratelimitbysize-remaining"),
        ("x-ratelimitbysize-limit-minute", "x-ratelimitbysize-remaining-minute"),
        ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"),
    ),
    "tokens_month": (
        ("x-ratelimit-limit-tokens-month", "x-ratelimit-remaining-tokens-month"),
        ("x-ratelimitbysize-limit-month", "x-ratelimitbysize-remaining-month"),
    ),
}
_COST = ("x-ratelimit-tokens-query-cost", "ratelimitbysize-query-cost")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _quota(headers: Mapping[str, str], names: tuple[tuple[str, str], ...]) -> Quota | None:
    for limit_name, remaining_name in names:
        limit = _number(headers.get(limit_name))
        if limit is not None and limit > 0:
            return Quota(limit, _number(headers.get(remaining_name)), limit_name)
    return None


def read_rate_headers(headers: Mapping[str, str]) -> Announced:
    """The limits announced in ``headers`` (lower-case names, as the client keeps them)."""
    if not headers:
        return _NOTHING
    cost = next((c for name in _COST if (c := _number(headers.get(name))) is not None), None)
    return Announced(
        **{window: _quota(headers, names) for window, names in _WINDOWS.items()},
        query_cost=cost,
    )
