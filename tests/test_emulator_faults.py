"""Fault specs: what ``--faults`` accepts, what it refuses, and how faults are drawn."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from batchjudge.emulator import EmulatorConfig, FaultSpec, parse_latency
from batchjudge.emulator.faults import long_wait, stall_seconds
from batchjudge.errors import ConfigError


def test_a_spec_lists_statuses_and_named_faults_with_their_probabilities() -> None:
    spec = FaultSpec.parse("500:0.05, drop:0.02,slow:0.02,malformed:0.02,nonjson:0.01,400:0.01")
    assert dict(spec.entries) == {
        "500": 0.05,
        "drop": 0.02,
        "slow": 0.02,
        "malformed": 0.02,
        "nonjson": 0.01,
        "400": 0.01,
    }


def test_a_stall_is_given_in_milliseconds() -> None:
    spec = FaultSpec.parse("stall=40:0.001,retry-after=2.50:0.01")
    assert dict(spec.entries) == {"stall=40": 0.001, "retry-after=2.5": 0.01}
    assert stall_seconds("stall=40") == pytest.approx(0.040)
    assert stall_seconds("retry-after=2.5") is None and long_wait("stall=40") is None


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("teapot:0.1", "unknown fault 'teapot'"),
        ("200:0.1", "unknown fault '200'"),
        ("500", "is not KIND:PROBABILITY"),
        ("500:often", "is not a probability"),
        ("500:1.5", "must be in [0, 1]"),
        ("500:0.6,drop:0.6", "add up to more than 1"),
        ("stall=0:0.1", "positive number of milliseconds"),
        ("retry-after=soon:0.1", "positive number of seconds"),
    ],
)
def test_a_bad_spec_is_refused_with_a_message_naming_the_problem(spec: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match="--faults") as info:
        FaultSpec.parse(spec)
    assert complaint in str(info.value)


def test_draws_follow_the_probabilities() -> None:
    spec = FaultSpec.parse("500:0.2,drop:0.1")
    rng = random.Random(3)
    draws = Counter(spec.draw(rng) for _ in range(20_000))
    assert draws["500"] / 20_000 == pytest.approx(0.2, abs=0.015)
    assert draws["drop"] / 20_000 == pytest.approx(0.1, abs=0.015)
    assert draws[None] / 20_000 == pytest.approx(0.7, abs=0.015)


def test_the_same_seed_draws_the_same_faults() -> None:
    spec = FaultSpec.parse("500:0.3,slow:0.3")
    one, two = random.Random(7), random.Random(7)
    assert [spec.draw(one) for _ in range(200)] == [spec.draw(two) for _ in range(200)]


def test_the_empty_spec_never_injects_a_fault() -> None:
    rng = random.Random(0)
    assert all(FaultSpec.parse("").draw(rng) is None for _ in range(1000))


def test_latency_reads_mean_and_optional_jitter_in_milliseconds() -> None:
    assert parse_latency("300:150") == (300.0, 150.0)
    assert parse_latency("25") == (25.0, 0.0)
    with pytest.raises(ConfigError, match="--latency-ms"):
        parse_latency("fast")


def test_non_positive_limits_are_refused() -> None:
    with pytest.raises(ConfigError, match="--rps"):
        EmulatorConfig(rps=0)
    with pytest.raises(ConfigError, match="--tpm"):
        EmulatorConfig(tpm=-1)
