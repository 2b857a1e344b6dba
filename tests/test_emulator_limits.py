"""The emulator's rate limits: strict rolling windows, exact waits, per-key state, violations."""

from __future__ import annotations

import math

import pytest
from emulator_fixtures import FakeClock
from hypothesis import given
from hypothesis import strategies as st

from batchjudge.emulator.limits import IN_FLIGHT_GRACE_S, Limits, RateLimiter, SlidingWindow


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _limiter(clock: FakeClock, **limits: int) -> RateLimiter:
    return RateLimiter(Limits(**limits), clock=clock)


def _request(limiter: RateLimiter, key: str = "k") -> bool:
    return limiter.admit_request(key, limiter.arrive(key)).allowed


def test_requests_beyond_rps_within_one_second_get_429_with_the_wait_until_a_slot_frees(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, rps=3)
    for step in range(3):
        clock.now = 1000.0 + step * 0.1
        assert _request(limiter)
    clock.now = 1000.5
    refused = limiter.admit_request("k", limiter.arrive("k"))
    assert not refused.allowed
    assert refused.wait_s == pytest.approx(0.5)
    assert refused.refused_by == "requests-second"


def test_a_slot_frees_exactly_when_the_oldest_request_leaves_the_one_second_window(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, rps=2)
    assert _request(limiter)
    clock.now += 0.3
    assert _request(limiter)
    clock.now += 0.69
    assert not _request(limiter)
    clock.now += 0.011
    assert _request(limiter)


def test_the_window_rolls_with_each_arrival_instead_of_resetting_on_the_second(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, rps=2)
    clock.now = 1000.5
    assert _request(limiter)
    clock.now = 1000.9
    assert _request(limiter)
    clock.now = 1001.1  # a new calendar second, but two arrived in the last second
    assert not _request(limiter)
    clock.now = 1001.5  # the one from 1000.5 has just left the window
    assert _request(limiter)


def test_a_burst_of_n_is_admitted_at_once_and_the_n_plus_first_is_refused(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, rps=50)
    assert all(_request(limiter) for _ in range(50))
    refused = limiter.admit_request("k", limiter.arrive("k"))
    assert not refused.allowed and refused.wait_s == pytest.approx(1.0)


def test_refused_requests_do_not_use_up_the_window(clock: FakeClock) -> None:
    limiter = _limiter(clock, rps=1)
    assert _request(limiter)
    for _ in range(5):
        assert not _request(limiter)
    clock.now += 1.0
    assert _request(limiter)


def test_requests_per_minute_is_a_rolling_sixty_second_window(clock: FakeClock) -> None:
    limiter = _limiter(clock, rpm=3)
    for step in range(3):
        clock.now = 1000.0 + step * 10
        assert _request(limiter)
    clock.now = 1030.0
    refused = limiter.admit_request("k", limiter.arrive("k"))
    assert (refused.allowed, refused.refused_by) == (False, "requests-minute")
    assert refused.wait_s == pytest.approx(30.0)
    clock.now = 1060.0
    assert _request(limiter)


def test_the_longest_wait_of_two_full_request_windows_is_the_one_given(clock: FakeClock) -> None:
    limiter = _limiter(clock, rps=2, rpm=2)
    assert _request(limiter) and _request(limiter)
    refused = limiter.admit_request("k", limiter.arrive("k"))
    assert refused.refused_by == "requests-minute" and refused.wait_s == pytest.approx(60.0)


def test_tokens_per_minute_refuse_until_enough_earlier_tokens_expire(clock: FakeClock) -> None:
    limiter = _limiter(clock, tpm=100)
    assert limiter.admit_tokens("k", 60).allowed
    clock.now += 10
    assert limiter.admit_tokens("k", 30).allowed
    clock.now += 10
    refused = limiter.admit_tokens("k", 40)
    assert not refused.allowed
    assert refused.wait_s == pytest.approx(40.0)  # the first 60 expire at t0 + 60
    assert refused.refused_by == "tokens-minute"
    clock.now += 40
    assert limiter.admit_tokens("k", 40).allowed


def test_a_request_that_fits_exactly_is_admitted_and_one_more_token_is_not(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, tpm=100)
    assert limiter.admit_tokens("k", 70).allowed
    assert limiter.admit_tokens("k", 30).allowed
    assert not limiter.admit_tokens("k", 1).allowed


def test_a_token_refusal_still_counts_the_request_in_the_request_windows(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, rps=2, tpm=100)
    assert _request(limiter)
    assert limiter.admit_tokens("k", 100).allowed
    assert _request(limiter)
    assert not limiter.admit_tokens("k", 10).allowed
    assert not _request(limiter)  # two requests were counted in this second


def test_a_request_larger_than_the_whole_tpm_is_too_large_not_rate_limited(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, tpm=100)
    refused = limiter.admit_tokens("k", 101)
    assert not refused.allowed and refused.too_large and math.isinf(refused.wait_s)


def test_a_spent_monthly_budget_refuses_for_good_with_no_wait_that_helps(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, tokens_per_month=250)
    assert limiter.admit_tokens("k", 200).allowed
    clock.now += 3600
    refused = limiter.admit_tokens("k", 51)
    assert (refused.allowed, refused.refused_by) == (False, "tokens-month")
    assert math.isinf(refused.wait_s)
    assert limiter.admit_tokens("k", 50).allowed


def test_arrivals_before_the_given_retry_after_are_violations_and_later_ones_are_not(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, rps=1)
    limiter.cooldown("k", 0.75)
    clock.now += 0.5
    limiter.arrive("k")
    clock.now += 0.25
    limiter.arrive("k")
    assert (limiter.early_arrivals, limiter.violations) == (1, 1)


def test_an_arrival_right_after_the_429_is_early_but_not_a_violation(clock: FakeClock) -> None:
    limiter = _limiter(clock, rps=1)
    limiter.cooldown("k", 1.0)
    clock.now += IN_FLIGHT_GRACE_S / 2  # already on the wire when the 429 left
    limiter.arrive("k")
    assert (limiter.early_arrivals, limiter.violations) == (1, 0)
    clock.now += IN_FLIGHT_GRACE_S
    limiter.arrive("k")
    assert (limiter.early_arrivals, limiter.violations) == (2, 1)
    assert limiter.counts("k") == (2, 1)


def test_limits_and_cooldowns_are_kept_per_api_key(clock: FakeClock) -> None:
    limiter = _limiter(clock, rps=1)
    assert _request(limiter, "a")
    assert not _request(limiter, "a")
    limiter.cooldown("a", 1.0)
    clock.now += 0.5
    assert _request(limiter, "b")
    assert limiter.counts("b") == (0, 0)
    limiter.arrive("a")
    assert limiter.counts("a") == (1, 1)


def test_readings_report_each_limit_what_remains_and_when_it_is_full_again(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, rps=5, rpm=100, tpm=1000, tokens_per_month=10**6)
    assert _request(limiter)
    limiter.admit_tokens("k", 120)
    clock.now += 0.25
    readings = {r.window: r for r in limiter.readings("k")}
    assert {w: (r.limit, r.remaining) for w, r in readings.items()} == {
        "requests-second": (5, 4),
        "requests-minute": (100, 99),
        "tokens-minute": (1000, 880),
        "tokens-month": (10**6, 10**6 - 120),
    }
    assert readings["requests-second"].empty_in_s == pytest.approx(0.75)
    assert readings["tokens-minute"].empty_in_s == pytest.approx(59.75)


def test_the_report_counts_admitted_requests_and_tokens_refusals_and_peak_use(
    clock: FakeClock,
) -> None:
    limiter = _limiter(clock, rps=2, tpm=100)
    for cost in (40, 50):
        assert _request(limiter)
        limiter.admit_tokens("k", cost)
    assert not _request(limiter)
    clock.now += 60
    report = limiter.report("k")
    assert report["admitted_requests"] == 2 and report["admitted_tokens"] == 90
    assert report["refused_by"] == {"requests-second": 1}
    assert report["windows"]["tokens-minute"] == {"limit": 100, "used": 0, "peak": 90}


def test_the_report_counts_what_was_admitted_in_each_second_since_the_first(clock: FakeClock) -> None:
    limiter = _limiter(clock, rps=3)
    outcomes = []
    for at in (100.0, 100.2, 100.9, 100.95, 101.5, 103.2):  # the fourth: three in its window
        clock.now = at
        outcomes.append(_request(limiter))
    assert outcomes == [True, True, True, False, True, True]
    assert limiter.report("k")["admitted_per_second"] == [3, 1, 0, 1]


def test_no_limits_means_everything_is_admitted(clock: FakeClock) -> None:
    limiter = _limiter(clock)
    assert all(_request(limiter) and limiter.admit_tokens("k", 10**6).allowed for _ in range(1000))
    assert limiter.readings("k") == []


@given(
    limit=st.integers(1, 50),
    steps=st.lists(st.tuples(st.floats(0.0, 0.4), st.integers(1, 30)), max_size=200),
)
def test_a_window_holds_exactly_what_arrived_in_its_span_and_its_wait_is_exact(
    limit: int, steps: list[tuple[float, int]]
) -> None:
    window = SlidingWindow(1.0, limit)
    admitted: list[tuple[float, int]] = []
    now = 0.0
    for gap, amount in steps:
        now += gap
        inside = sum(a for t, a in admitted if t > now - 1.0)
        assert window.used(now) == inside
        wait = window.wait(amount, now)
        if inside + amount <= limit:
            assert wait == 0.0
            window.add(amount, now)
            admitted.append((now, amount))
        elif amount > limit:
            assert math.isinf(wait)
        else:
            later = now + wait + 1e-9  # exact to within float rounding
            assert sum(a for t, a in admitted if t > later - 1.0) + amount <= limit
            just_before = later - 1e-6
            assert sum(a for t, a in admitted if t > just_before - 1.0) + amount > limit
