"""The shared limits and the retry policy, on virtual time: cooldown, token bucket and its
refunds, adaptive concurrency, exact Retry-After waits, backoff, and what stops a run."""

from __future__ import annotations

from pathlib import Path

import anyio
import polars as pl
import pytest
from virtual_time import clock, run_engine_virtual, run_virtual, sleep

from batchjudge import JudgeReply, JudgeRequest, MockProvider, RunConfig
from batchjudge.core.types import ProviderBase
from batchjudge.engine.limits import Cooldown, Limits, Reservation
from batchjudge.engine.token_window import TokenWindow
from batchjudge.engine.retry import RetryPolicy, StopRun, call_with_retries
from batchjudge.engine.stats import RunStats
from batchjudge.errors import AuthError, BadRequestError, RateLimitError, TransientError

OK = JudgeReply('{"consistency": 1}', prompt_tokens=100, completion_tokens=10)


def request(row_id: str = "r", prompt_tokens: int = 100, max_tokens: int = 64) -> JudgeRequest:
    return JudgeRequest(row_id, [{"role": "user", "content": "x"}], "p", "h", "m",
                        max_tokens=max_tokens, prompt_tokens=prompt_tokens)


# -- cooldown ---------------------------------------------------------------------------------


def test_a_cooldown_holds_every_waiter_until_it_expires_and_is_never_shortened() -> None:
    async def main() -> list[float]:
        cooldown = Cooldown(clock, sleep)
        start = clock()
        cooldown.extend(2.0)
        cooldown.extend(0.5)  # a shorter Retry-After does not shorten the pause
        woke: list[float] = []

        async def waiter() -> None:
            await cooldown.wait()
            woke.append(clock() - start)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(waiter)
            await sleep(1.0)
            cooldown.extend(1.5)  # extended while they wait: they wait on
        return woke

    assert run_virtual(main) == [pytest.approx(2.5)] * 5


# -- the token window ---------------------------------------------------------------------


def test_the_token_window_admits_the_limit_per_minute_and_no_more_in_any_minute() -> None:
    async def main() -> list[float]:
        window = TokenWindow(600, 60.0, margin=0.0, clock=clock, sleep=sleep)
        start = clock()
        times = []
        for _ in range(14):
            await window.acquire(100)
            times.append(round(clock() - start, 3))
        return times

    times = run_virtual(main)
    assert times == [0.0] * 6 + [60.0] * 6 + [120.0] * 2
    assert all(sum(1 for u in times if t <= u < t + 60) <= 6 for t in times)


def test_a_correction_frees_tokens_at_once_for_the_next_request() -> None:
    async def main(used: float) -> float:
        window = TokenWindow(600, 60.0, margin=0.0, clock=clock, sleep=sleep)
        charge = await window.acquire(500)
        await sleep(1.0)
        window.correct(charge, used)
        start = clock()
        await window.acquire(300)
        return clock() - start

    assert run_virtual(main, 500.0) == pytest.approx(59.0, abs=0.3)  # waits for the 500 to expire
    assert run_virtual(main, 200.0) == pytest.approx(0.0, abs=0.01)  # the refund makes room now


def test_limits_charge_the_expected_completion_and_correct_it_with_the_reported_usage() -> None:
    async def main() -> tuple[float, float, float]:
        limits = Limits(concurrency=4, tpm=6000, expected_completion_tokens=64, clock=clock, sleep=sleep)
        assert limits.tokens is not None
        reservation = limits.charge(request(prompt_tokens=100))
        await limits.before_send(reservation)
        before = limits.tokens.used
        limits.settle(reservation, JudgeReply("x", prompt_tokens=100, completion_tokens=4))  # used 104
        after_refund = limits.tokens.used
        second = limits.charge(request())
        await limits.before_send(second)
        limits.settle(second, JudgeReply("x", prompt_tokens=400, completion_tokens=100))
        return before, after_refund, limits.tokens.used

    before, after_refund, overrun = run_virtual(main)
    assert before == pytest.approx(164, abs=0.1)
    assert after_refund == pytest.approx(104, abs=0.1)
    assert overrun == pytest.approx(604, abs=0.1)  # usage beyond the reservation is charged too


def test_a_tpm_run_paces_long_prompts_at_the_token_limit(tmp_path: Path) -> None:
    """Client-side --tpm end to end: ~1,000-token prompts against 3,000 tokens a minute."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    document = " ".join(f"The council met on day {i} and approved {i * 7} homes in Leeds." for i in range(45))
    data = tmp_path / "long.parquet"
    pq.write_table(pa.table({"premise": [document] * 9, "hypothesis": [f"Summary {i}." for i in range(9)]}), data)
    sent: list[tuple[float, int]] = []

    def handler(req: JudgeRequest) -> JudgeReply:
        sent.append((anyio.current_time(), req.prompt_tokens))
        return JudgeReply('{"consistency": 1}', prompt_tokens=req.prompt_tokens, completion_tokens=10)

    config = RunConfig(inputs=[data], out=tmp_path / "run", tpm=3000, concurrency=8, max_tokens=10,
                       check_labels=False)
    result = run_engine_virtual(config, provider=MockProvider(handler))
    assert result.complete
    tokens = sent[0][1] + 10
    assert 900 < tokens < 1100  # counted exactly before sending, since --tpm needs the count
    times = [t - sent[0][0] for t, _ in sent]
    burst = int(3000 // tokens)
    assert times[:burst] == [0.0] * burst  # a fresh window takes its limit at once...
    assert times[burst] == pytest.approx(60.5, abs=0.3)  # ...then the next minute's (+ margin)
    for start in times:  # and never more than the limit in any minute
        assert sum(tokens for t in times if start <= t < start + 60) <= 3000


# -- adaptive concurrency ---------------------------------------------------------------------


def test_new_429_episodes_shrink_concurrency_to_a_floor_and_calm_grows_it_back() -> None:
    async def main() -> tuple[list[int], int]:
        limits = Limits(concurrency=16, rps=50, clock=clock, sleep=sleep, adapt_after_429s=3, calm_successes=5)
        seen = []
        for _ in range(12):
            limits.on_rate_limited(1.0)
            limits.on_rate_limited(1.0)  # same episode: changes nothing more
            seen.append(int(limits.capacity.total_tokens))
            await sleep(1.5)  # the pause ends: the next 429 is a new episode
        for _ in range(100):
            limits.on_success()
        return seen, int(limits.capacity.total_tokens)

    seen, recovered = run_virtual(main)
    assert seen[:3] == [16, 16, 12] and min(seen) == 4  # a quarter of the ceiling at least
    assert recovered == 16


# -- the retry policy -------------------------------------------------------------------------


class Scripted(ProviderBase):
    """Raises the given errors in turn, then answers."""

    name = "scripted"

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.sent: list[float] = []

    async def judge(self, req: JudgeRequest) -> JudgeReply:
        self.sent.append(clock())
        if self.errors:
            raise self.errors.pop(0)
        return OK


def _call(provider: Scripted, policy: RetryPolicy) -> object:
    """One row's calls, in a run whose endpoint has answered before (before any success, a
    failing endpoint is an outage, not the row's retries: test_trust_outage.py)."""

    async def main() -> object:
        limits = Limits(concurrency=1, clock=clock, sleep=sleep)
        limits.breaker.record_success(None)
        return await call_with_retries(provider, request(), limits, RunStats(), policy)

    return run_virtual(main)


def test_retry_after_in_the_decision_is_waited_exactly() -> None:
    provider = Scripted(RateLimitError("429", retry_after=7.0), TransientError("503", retry_after=3.0))
    outcome = _call(provider, RetryPolicy(max_retries=5, backoff_base=0.5, backoff_cap=30))
    assert getattr(outcome, "reply") is OK and getattr(outcome, "attempts") == 3
    gaps = [b - a for a, b in zip(provider.sent, provider.sent[1:], strict=False)]
    assert gaps == [pytest.approx(7.0), pytest.approx(3.0)]


def test_without_retry_after_waits_are_jittered_under_the_doubling_cap() -> None:
    # four failures: a fifth in a row would be an outage of the endpoint (the breaker's rule)
    provider = Scripted(*(TransientError("503") for _ in range(4)))
    outcome = _call(provider, RetryPolicy(max_retries=6, backoff_base=1.0, backoff_cap=4.0))
    assert getattr(outcome, "attempts") == 5
    gaps = [b - a for a, b in zip(provider.sent, provider.sent[1:], strict=False)]
    caps = [1.0, 2.0, 4.0, 4.0]
    assert all(0 <= gap <= cap + 1e-9 for gap, cap in zip(gaps, caps, strict=True))


def test_the_wait_comes_from_the_providers_decision_not_the_exception() -> None:
    class Patient(Scripted):
        def should_retry(self, exc: BaseException):  # type: ignore[no-untyped-def]
            from batchjudge.core.types import RetryDecision, RetryKind

            return RetryDecision(RetryKind.TRANSIENT, retry_after=11.0)

    provider = Patient(BadRequestError("400 that this provider calls transient"))
    outcome = _call(provider, RetryPolicy(max_retries=2))
    assert getattr(outcome, "attempts") == 2
    assert provider.sent[1] - provider.sent[0] == pytest.approx(11.0)


def test_a_row_error_ends_the_row_and_a_fatal_one_stops_the_run() -> None:
    failed = _call(Scripted(BadRequestError("bad", status=400)), RetryPolicy(max_retries=5))
    assert getattr(failed, "reply") is None and getattr(failed, "attempts") == 1
    assert getattr(failed, "error") == "BadRequestError[400]: bad"
    with pytest.raises(StopRun) as stopped:
        _call(Scripted(AuthError("401", status=401)), RetryPolicy(max_retries=5))
    assert isinstance(stopped.value.cause, AuthError)


def test_retries_stop_after_max_retries_with_the_last_error() -> None:
    provider = Scripted(*(TransientError(f"down {i}", status=502) for i in range(10)))
    outcome = _call(provider, RetryPolicy(max_retries=3, backoff_base=0.1, backoff_cap=0.1))
    assert getattr(outcome, "attempts") == 4 and getattr(outcome, "error") == "TransientError[502]: down 3"


def test_429_retries_are_counted_once_per_episode_by_the_shared_limits(tmp_path: Path, write_pairs) -> None:
    calls = {"n": 0}

    def handler(req: JudgeRequest) -> JudgeReply:
        calls["n"] += 1
        if calls["n"] <= 4:
            raise RateLimitError("busy", retry_after=1.0)
        return OK

    config = RunConfig(inputs=[write_pairs(4)], out=tmp_path / "run", concurrency=4, max_retries=3, check_labels=False)
    result = run_engine_virtual(config, provider=MockProvider(handler))
    df = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet")
    assert result.complete and df["status"].to_list() == ["ok"] * 4
    assert result.stats["rate_limited"] == 4 and result.stats["retries"] == 4
