"""Turning a judge's reply into a verdict, tolerantly and without ever raising.

Replies come as clean JSON (JSON mode), JSON inside a Markdown code fence, JSON surrounded by
prose, ``key: value`` text, or a bare label (the fine-tuned prompt's short answer). The verdict
key may be ``consistency`` (the cookbook's), ``consistent``, ``label``, ``verdict`` or
``answer``; its value is normalised: ``1``, ``"1"``, ``true``, ``"consistent"``, ``"yes"``,
``"factually consistent"`` … mean consistent (1); ``0``, ``"0"``, ``false``,
``"inconsistent"``, ``"no"``, ``"hallucination"`` … mean inconsistent (0).

The clean-JSON case costs one ``orjson.loads``; regular expressions run only when it fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from batchjudge.core.results import STATUS_OK, STATUS_PARSE_ERROR, Status

__all__ = ["ParsedVerdict", "aggregate_votes", "parse_verdict"]


@dataclass(frozen=True, slots=True)
class ParsedVerdict:
    """One parsed reply. ``verdict`` and ``score`` are ``None`` unless ``status == "ok"``."""

    status: Status
    verdict: int | None = None
    """1 consistent, 0 inconsistent."""
    score: float | None = None
    """P(consistent) when the reply (or a vote) carries one, else ``None``."""
    reason: str | None = None
    error: str | None = None
    """Why parsing failed; the engine keeps the raw reply beside it."""


_VERDICT_KEYS = ("consistency", "consistent", "label", "verdict", "answer")
_PROBABILITY_KEYS = ("score", "probability", "p_consistent", "probability_consistent")
_CONFIDENCE_KEYS = ("confidence",)
_REASON_KEYS = ("reason", "reasoning", "explanation", "rationale")

_CONSISTENT = frozenset(
    {
        "1", "true", "yes", "consistent", "factually consistent", "supported", "entailed",
        "entailment", "faithful", "not hallucinated", "no hallucination",
    }
)  # fmt: skip
_INCONSISTENT = frozenset(
    {
        "0", "false", "no", "inconsistent", "factually inconsistent", "not consistent",
        "unsupported", "not supported", "contradiction", "contradicted", "hallucination",
        "hallucinated", "unfaithful",
    }
)  # fmt: skip

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*(.*?)```", re.DOTALL)
_KEY_VALUE = re.compile(
    r"""["']?\b(consistency|consistent|label|verdict|answer)\b["']?\s*[:=]\s*"""
    r"""["']?([A-Za-z0-9_. -]*?)["']?\s*(?:[,}\n]|$)""",
    re.IGNORECASE,
)
_REASON_VALUE = re.compile(
    r"""["']?\b(?:reason|reasoning|explanation|rationale)\b["']?\s*[:=]\s*(["'])(.*?)\1\s*[,}]""",
    re.IGNORECASE | re.DOTALL,
)
_LEADING_LABEL = re.compile(r"^[\s\"'*`]*([A-Za-z][A-Za-z ]*?|[01])\s*(?:[.:;,!)\-]|$)")
_SPACES = re.compile(r"[\s_\-]+")


def _label(value: Any) -> int | None:
    """1, 0 or None for a verdict value of any JSON type."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value) if value in (0, 1) else None
    if isinstance(value, str):
        key = _SPACES.sub(" ", value.strip().strip("\"'`*.!").lower()).strip()
        if key in _CONSISTENT:
            return 1
        if key in _INCONSISTENT:
            return 0
        try:
            number = float(key)
        except ValueError:
            return None
        return int(number) if number in (0.0, 1.0) else None
    return None


def _probability(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0.0 <= number <= 1.0 else None


def _reason(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def _from_object(obj: Mapping[str, Any]) -> ParsedVerdict | None:
    """A verdict from a decoded JSON object (searching one nested level), or None."""
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for key in _VERDICT_KEYS:
        if key in lowered:
            verdict = _label(lowered[key])
            if verdict is None:
                return ParsedVerdict(
                    STATUS_PARSE_ERROR, error=f"unrecognised {key!r} value {lowered[key]!r}"
                )
            return ParsedVerdict(
                STATUS_OK,
                verdict=verdict,
                score=_score(lowered, verdict),
                reason=next(
                    (_reason(lowered[k]) for k in _REASON_KEYS if k in lowered), None
                ),
            )
    for value in obj.values():
        if isinstance(value, dict):
            found = _from_object(value)
            if found is not None:
                return found
    return None


def _score(obj: Mapping[str, Any], verdict: int) -> float | None:
    """P(consistent): a probability key as is; a confidence in the given verdict converted."""
    for key in _PROBABILITY_KEYS:
        if key in obj and (p := _probability(obj[key])) is not None:
            return p
    for key in _CONFIDENCE_KEYS:
        if key in obj and (p := _probability(obj[key])) is not None:
            return p if verdict == 1 else 1.0 - p
    return None


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts at a ``{`` in ``text`` (at most a few tries)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    start = text.find("{")
    tries = 0
    while start >= 0 and tries < 8:
        tries += 1
        try:
            obj, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        start = text.find("{", end)
    return found


def parse_verdict(text: str) -> ParsedVerdict:
    """Parse one reply; never raises (a reply that yields no verdict is a ``parse_error``)."""
    try:
        return _parse(text)
    except Exception as exc:  # noqa: BLE001 - a parser bug must not cost a row: report it
        return ParsedVerdict(STATUS_PARSE_ERROR, error=f"parser failure: {exc!r}")


def _parse(text: str) -> ParsedVerdict:
    if not isinstance(text, str) or not text.strip():
        return ParsedVerdict(STATUS_PARSE_ERROR, error="empty reply")
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        found = _from_object(whole)
        if found is not None:
            return found
    elif whole is not None and (verdict := _label(whole)) is not None:
        return ParsedVerdict(STATUS_OK, verdict=verdict)
    bodies = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for body in bodies:
        for obj in _json_objects(body):
            found = _from_object(obj)
            if found is not None:
                return found
    match = _KEY_VALUE.search(text)
    if match is not None:
        verdict = _label(match.group(2))
        if verdict is not None:
            reason = _REASON_VALUE.search(text)
            return ParsedVerdict(STATUS_OK, verdict=verdict, reason=reason and reason.group(2))
    for body in bodies:
        stripped = body.strip().strip("`").strip()
        verdict = _label(stripped)
        if verdict is None and (lead := _LEADING_LABEL.match(stripped)) is not None:
            verdict = _label(lead.group(1))
        if verdict is not None:
            return ParsedVerdict(STATUS_OK, verdict=verdict)
    return ParsedVerdict(STATUS_PARSE_ERROR, error="no verdict found in the reply")


def aggregate_votes(parsed: Sequence[ParsedVerdict]) -> ParsedVerdict:
    """Self-consistency: one verdict from several samples of the same row.

    The verdict is the majority over the samples that parsed; a tie goes to inconsistent (0),
    the cautious call for a hallucination detector. ``score`` is the fraction of parsed samples
    voting consistent; ``reason`` comes from the first sample agreeing with the majority.
    ``parse_error`` when no sample parsed.
    """
    ok = [p for p in parsed if p.status == STATUS_OK and p.verdict is not None]
    if not ok:
        errors = {p.error for p in parsed if p.error}
        return ParsedVerdict(
            STATUS_PARSE_ERROR,
            error=f"no sample of {len(parsed)} parsed"
            + (f" ({'; '.join(sorted(errors))})" if errors else ""),
        )
    consistent = sum(1 for p in ok if p.verdict == 1)
    verdict = 1 if consistent * 2 > len(ok) else 0
    reason = next(p.reason for p in ok if p.verdict == verdict)
    return ParsedVerdict(STATUS_OK, verdict=verdict, score=consistent / len(ok), reason=reason)
