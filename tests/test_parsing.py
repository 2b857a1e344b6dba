"""Reply parsing: every shape a judge answers in, label normalisation, votes."""

from __future__ import annotations

import random
import string

import pytest

from batchjudge.adapters.parsing import ParsedVerdict, aggregate_votes, parse_verdict


@pytest.mark.parametrize(
    ("reply", "verdict", "reason"),
    [
        ('{"consistency": 1, "reason": "all supported"}', 1, "all supported"),
        ('{"consistency": 0, "reason": "wrong year"}', 0, "wrong year"),
        ('```json\n{"consistency": "0", "reason": "x"}\n```', 0, "x"),
        ('```\n{"consistency": 1}\n```', 1, None),
        ('Here is my verdict: {"consistent": true, "reasoning": "fine"} Hope it helps!', 1, "fine"),
        ('{"label": "hallucination"}', 0, None),
        ('{"verdict": "Factually Consistent"}', 1, None),
        ('{"answer": "no"}', 0, None),
        ('{"Consistency": "YES"}', 1, None),
        ('{"consistency": false}', 0, None),
        ('{"consistency": 1.0}', 1, None),
        ('{"result": {"consistency": 0, "reason": "nested"}}', 0, "nested"),
        ('{"consistency": 0, "reason": ["a is wrong", "b is wrong"]}', 0, "a is wrong; b is wrong"),
        ("{'consistency': 0, 'reason': 'python dict, with a comma'}", 0, "python dict, with a comma"),
        ("consistency: 1\nreason: fine", 1, None),
        ("0", 0, None),
        ("1", 1, None),
        ('"inconsistent"', 0, None),
        ("Consistent.", 1, None),
        ("Inconsistent: the summary invents a date.", 0, None),
        ("factually_inconsistent", 0, None),
        ("true", 1, None),
    ],
)
def test_parse_verdict_reads_every_reply_shape(reply: str, verdict: int, reason: str | None) -> None:
    parsed = parse_verdict(reply)
    assert parsed.status == "ok", parsed.error
    assert parsed.verdict == verdict
    assert parsed.reason == reason


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        '{"foo": 2}',
        '{"consistency": 3}',
        '{"consistency": "maybe"}',
        "No statements are inconsistent with the document.",  # ambiguous prose: no guess
        "The summary is mostly fine.",
        "[1, 0]",
        "```json\n{\"consistency\": \n```",
    ],
)
def test_replies_without_a_clear_verdict_are_parse_errors_with_a_reason(reply: str) -> None:
    parsed = parse_verdict(reply)
    assert parsed.status == "parse_error"
    assert parsed.verdict is None and parsed.score is None
    assert parsed.error


def test_a_probability_is_kept_as_the_score_and_a_confidence_is_converted() -> None:
    assert parse_verdict('{"consistency": 1, "score": 0.8}').score == 0.8
    assert parse_verdict('{"consistency": 0, "probability": 0.3}').score == 0.3
    assert parse_verdict('{"consistency": 0, "confidence": 0.9}').score == pytest.approx(0.1)
    assert parse_verdict('{"consistency": 1, "confidence": 0.9}').score == pytest.approx(0.9)
    assert parse_verdict('{"consistency": 1, "score": 7}').score is None  # not a probability


def test_parse_verdict_never_raises_on_random_text() -> None:
    rng = random.Random(1234)
    alphabet = string.printable + "{}[]\":'`æ€→"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        parsed = parse_verdict(text)
        assert parsed.status in ("ok", "parse_error")
        assert (parsed.verdict is None) == (parsed.status == "parse_error")


def test_parse_verdict_treats_non_text_as_a_parse_error() -> None:
    assert parse_verdict(None).status == "parse_error"  # type: ignore[arg-type]


def ok(verdict: int, reason: str | None = None) -> ParsedVerdict:
    return ParsedVerdict("ok", verdict=verdict, reason=reason)


def test_votes_take_the_majority_and_the_vote_fraction_as_score() -> None:
    result = aggregate_votes([ok(1, "a"), ok(0, "b"), ok(1, "c"), ParsedVerdict("parse_error", error="x")])
    assert result.status == "ok" and result.verdict == 1
    assert result.score == pytest.approx(2 / 3)
    assert result.reason == "a"


def test_a_tied_vote_goes_to_inconsistent() -> None:
    result = aggregate_votes([ok(1, "a"), ok(0, "b")])
    assert result.verdict == 0 and result.score == 0.5 and result.reason == "b"


def test_votes_with_no_parsed_sample_are_a_parse_error() -> None:
    result = aggregate_votes([ParsedVerdict("parse_error", error="empty reply")] * 3)
    assert result.status == "parse_error" and "empty reply" in (result.error or "")
    assert aggregate_votes([]).status == "parse_error"
