"""The emulator's rate limits: strict windows, exact waits, per-key state, violation counting."""

from __future__ import annotations

import pytest

from batchjudge.emulator.limits import IN_FLIGHT_GRACE_S, RateLimiter


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_requests_beyond_rps_within_one_second_get_429_with_the_wait_until_a_slot_frees(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(rps=3, tpm=None, clock=clock)
    for step in range(3):
        clock.now = 1000.0 + step * 0.1
        assert limiter.admit("k", 0).allowed
    clock.now = 1000.5
    refused = limiter.admit("k", 0)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)
    assert refused.exceeded == "requests per second"
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["retry-after-ms"] == "500"


def test_a_slot_frees_exactly_when_the_oldest_request_leaves_the_one_second_window(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(rps=2, tpm=None, clock=clock)
    assert limiter.admit("k", 0).allowed
    clock.now += 0.3
    assert limiter.admit("k", 0).allowed
    clock.now += 0.69
    assert not limiter.admit("k", 0).allowed
    clock.now += 0.011
    assert limiter.admit("k", 0).allowed


def test_refused_requests_do_not_use_up_the_window(clock: FakeClock) -> None:
    limiter = RateLimiter(rps=1, tpm=None, clock=clock)
    assert limiter.admit("k", 0).allowed
    for _ in range(5):
        assert not limiter.admit("k", 0).allowed
    clock.now += 1.0
    assert limiter.admit("k", 0).allowed


def test_tokens_per_minute_refuse_until_enough_earlier_tokens_expire(clock: FakeClock) -> None:
    limiter = RateLimiter(rps=None, tpm=100, clock=clock)
    assert limiter.admit("k", 60).allowed
    clock.now += 10
    assert limiter.admit("k", 30).allowed
    clock.now += 10
    refused = limiter.admit("k", 40)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(40.0)  # the first 60 expire at t0 + 60
    assert refused.exceeded == "tokens per minute"
    clock.now += 40
    assert limiter.admit("k", 40).allowed


def test_completion_tokens_charged_after_admission_count_against_the_minute(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(rps=None, tpm=100, clock=clock)
    assert limiter.admit("k", 50).allowed
    limiter.charge("k", 40)
    assert not limiter.admit("k", 20).allowed


def test_a_request_larger_than_the_whole_tpm_is_too_large_not_rate_limited(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(rps=None, tpm=100, clock=clock)
    refused = limiter.admit("k", 101)
    assert not refused.allowed and refused.too_large


def test_arrivals_before_the_given_retry_after_are_violations_and_later_ones_are_not(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(rps=1, tpm=None, clock=clock)
    assert limiter.admit("k", 0).allowed
    clock.now += 0.25
    refused = limiter.admit("k", 0)
    assert int(refused.headers["retry-after-ms"]) == 750
    clock.now += 0.5
    assert limiter.arrive("k") is True
    clock.now += 0.25
    assert limiter.arrive("k") is False
    assert limiter.violations == 1


def test_an_arrival_right_after_the_429_is_early_but_not_a_violation(clock: FakeClock) -> None:
    limiter = RateLimiter(rps=1, tpm=None, clock=clock)
    limiter.admit("k", 0)
    limiter.admit("k", 0)
    clock.now += IN_FLIGHT_GRACE_S / 2  # already on the wire when the 429 left
    assert limiter.arrive("k") is True
    assert (limiter.early_arrivals, limiter.violations) == (1, 0)
    clock.now += IN_FLIGHT_GRACE_S
    limiter.arrive("k")
    assert (limiter.early_arrivals, limiter.violations) == (2, 1)


def test_limits_and_cooldowns_are_kept_per_api_key(clock: FakeClock) -> None:
    limiter = RateLimiter(rps=1, tpm=None, clock=clock)
    assert limiter.admit("a", 0).allowed
    assert not limiter.admit("a", 0).allowed
    assert limiter.admit("b", 0).allowed
    assert limiter.arrive("b") is False
    assert limiter.arrive("a") is True


def test_headers_report_the_limits_and_what_remains(clock: FakeClock) -> None:
    limiter = RateLimiter(rps=5, tpm=1000, clock=clock)
    headers = limiter.admit("k", 120).headers
    assert headers["x-ratelimit-limit-req-second"] == "5"
    assert headers["x-ratelimit-remaining-req-second"] == "4"
    assert headers["x-ratelimit-limit-tokens-minute"] == "1000"
    assert headers["x-ratelimit-remaining-tokens-minute"] == "880"
    assert headers["x-ratelimit-tokens-query-cost"] == "120"


def test_no_limits_means_everything_is_admitted(clock: FakeClock) -> None:
    limiter = RateLimiter(rps=None, tpm=None, clock=clock)
    assert all(limiter.admit("k", 10**6).allowed for _ in range(1000))
