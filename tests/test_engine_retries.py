"""Retry, Retry-After, shared cooldown, timeout and non-retryable 4xx, with a scripted provider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import polars as pl
import pytest

from batchjudge import (
    AuthError,
    BadRequestError,
    JudgeReply,
    JudgeRequest,
    MockProvider,
    RateLimitError,
    RunConfig,
    TransientError,
    run,
)
from virtual_time import run_engine_virtual

OK_REPLY = '{"consistency": 1, "reason": "fine"}'


def config(path: Path, out: Path, **overrides: object) -> RunConfig:
    options: dict[str, object] = dict(concurrency=4, max_retries=3, backoff_base=0.01, backoff_cap=0.05, timeout=5.0)
    options.update(overrides)
    return RunConfig(inputs=[path], out=out, **options)  # type: ignore[arg-type]


def results(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "results" / "*.parquet")


class Script:
    """Fails the first ``failures`` calls of each row with ``error()``, then answers; with
    ``every`` (n) only every n-th row (by first call, from the second) fails, the others
    answer, the first included: before any success an endpoint that fails every request is
    an outage, not the rows' failure (test_trust_outage.py), and some tests here are about
    the rows' retries."""

    def __init__(self, error: Callable[[], Exception], failures: int, every: int | None = None) -> None:
        self.error = error
        self.failures = failures
        self.every = every
        self.seen: dict[str, int] = {}
        self.order: dict[str, int] = {}

    def __call__(self, request: JudgeRequest) -> JudgeReply:
        n = self.seen.get(request.row_id, 0)
        self.seen[request.row_id] = n + 1
        index = self.order.setdefault(request.row_id, len(self.order))
        failing = self.every is None or (index > 0 and index % self.every == 0)
        if failing and n < self.failures:
            raise self.error()
        return JudgeReply(OK_REPLY, prompt_tokens=10, completion_tokens=5)


def test_transient_errors_are_retried_until_the_row_succeeds(write_pairs, tmp_path):
    """One row at a time, each failing twice (fewer in a row than the breaker's streak)."""
    provider = MockProvider(Script(lambda: TransientError("boom", status=503), failures=2, every=1))
    result = run(config(write_pairs(6), tmp_path / "run", concurrency=1), provider=provider)
    df = results(tmp_path / "run")
    assert result.complete and result.exit_code == 0
    assert df["status"].to_list() == ["ok"] * 6
    assert sorted(df["attempts"].to_list()) == [1] + [3] * 5
    assert result.stats["retries"] == 10 and result.stats["outages"] == 0


def test_retries_stop_at_max_retries_and_the_row_fails_with_the_last_error(write_pairs, tmp_path):
    """Every other row always fails, between rows that answer: the endpoint works, so the
    failing rows fail after their retries."""
    provider = MockProvider(Script(lambda: TransientError("still down", status=502), failures=99, every=2))
    result = run(config(write_pairs(5), tmp_path / "run", max_retries=2, concurrency=1), provider=provider)
    df = results(tmp_path / "run").filter(pl.col("status") == "failed")
    assert result.complete and result.counts["ok"] == 3  # failed after its retries is a final result
    assert df["attempts"].to_list() == [3] * 2
    assert all("TransientError[502]: still down" in e for e in df["error"].to_list())


def test_a_non_retryable_4xx_fails_the_row_at_once(write_pairs, tmp_path):
    provider = MockProvider(Script(lambda: BadRequestError("bad model", status=400), failures=99))
    run(config(write_pairs(4), tmp_path / "run"), provider=provider)
    df = results(tmp_path / "run")
    assert df["status"].to_list() == ["failed"] * 4
    assert df["attempts"].to_list() == [1] * 4
    assert len(provider.calls) == 4


def test_a_timeout_is_retried_and_reported_when_it_persists(write_pairs, tmp_path):
    """After a first row answered, two rows that never answer time out twice each (four in a
    row, one fewer than the breaker's streak): they fail, saying so."""
    seen: list[str] = []

    async def slow(request: JudgeRequest) -> JudgeReply:
        if request.row_id not in seen:
            seen.append(request.row_id)
        if request.row_id != seen[0]:
            await anyio.sleep(1.0)
        return JudgeReply(OK_REPLY)

    run_engine_virtual(config(write_pairs(3), tmp_path / "run", timeout=0.05, max_retries=1, concurrency=1),
                       provider=MockProvider(slow))
    df = results(tmp_path / "run").filter(pl.col("status") == "failed")
    assert df["attempts"].to_list() == [2] * 2
    assert all("no reply within 0.05 s (timeout)" in e for e in df["error"].to_list())


def test_retry_after_is_obeyed_and_pauses_every_worker(write_pairs, tmp_path):
    """One 429 with Retry-After 2 s (virtual time): no request from any worker starts inside
    the pause, and the pause costs no more than it must."""
    starts: list[float] = []
    state: dict[str, float | None] = {"limited_at": None}

    async def handler(request: JudgeRequest) -> JudgeReply:
        now = anyio.current_time()
        starts.append(now)
        if state["limited_at"] is None and len(starts) == 3:
            state["limited_at"] = now
            raise RateLimitError("slow down", retry_after=2.0)
        await anyio.sleep(0.3)
        return JudgeReply(OK_REPLY)

    result = run_engine_virtual(config(write_pairs(24), tmp_path / "run", concurrency=4), provider=MockProvider(handler))
    limited_at = state["limited_at"]
    assert limited_at is not None and result.complete
    # requests already in flight may land; none may *start* within the cooldown
    inside = [t for t in starts if limited_at < t < limited_at + 2.0]
    assert inside == []
    assert min(t for t in starts if t > limited_at) == pytest.approx(limited_at + 2.0)
    assert result.stats["rate_limited"] == 1
    assert results(tmp_path / "run")["status"].to_list() == ["ok"] * 24


def test_repeated_429s_shrink_concurrency(write_pairs, tmp_path):
    calls = {"n": 0}

    def handler(request: JudgeRequest) -> JudgeReply:
        calls["n"] += 1
        if calls["n"] <= 8:
            raise RateLimitError("busy", retry_after=0.01)
        return JudgeReply(OK_REPLY)

    result = run_engine_virtual(config(write_pairs(8), tmp_path / "run", concurrency=8, max_retries=10), provider=MockProvider(handler))
    assert result.complete
    assert result.stats["rate_limited"] == 8
    assert result.stats["concurrency"] < 8


def test_a_rejected_key_stops_the_run_and_marks_nothing_done(write_pairs, tmp_path):
    provider = MockProvider(Script(lambda: AuthError("401 Unauthorized: invalid key", status=401), failures=99))
    result = run(config(write_pairs(50), tmp_path / "run", concurrency=2), provider=provider)
    assert not result.complete and result.exit_code == 2
    assert result.error is not None and "AuthError" in result.error
    assert len(provider.calls) <= 2  # the first 401 stops every worker
    assert not list((tmp_path / "run" / "results").glob("*.parquet"))


@pytest.mark.parametrize("samples", [3])
def test_self_consistency_takes_the_majority_and_the_vote_fraction(write_pairs, tmp_path, samples):
    answers = iter(['{"consistency": 1}', '{"consistency": 0}', '{"consistency": 1}'])

    def handler(request: JudgeRequest) -> JudgeReply:
        return JudgeReply(next(answers))

    run(config(write_pairs(1), tmp_path / "run", samples=samples, temperature=0.7), provider=MockProvider(handler))
    row = results(tmp_path / "run").row(0, named=True)
    assert row["verdict"] == 1 and row["attempts"] == 3
    assert row["score"] == pytest.approx(2 / 3)


def test_429s_from_one_burst_count_as_one_episode_and_concurrency_keeps_a_floor(write_pairs, tmp_path):
    state = {"n": 0}

    def handler(request: JudgeRequest) -> JudgeReply:
        state["n"] += 1
        if state["n"] <= 40:
            raise RateLimitError("busy", retry_after=0.05)
        return JudgeReply(OK_REPLY)

    result = run_engine_virtual(config(write_pairs(16), tmp_path / "run", concurrency=8, max_retries=20), provider=MockProvider(handler))
    assert result.complete and result.stats["rate_limited"] == 40
    assert result.stats["concurrency"] >= 2  # never below a quarter of the ceiling


def test_a_retry_goes_ahead_of_the_first_attempts_waiting_at_the_pacer(write_pairs, tmp_path):
    """With more workers than the window lets go, first attempts wait in line at the pacer; a
    row's retry must not wait behind them (at a run's end that wait came on top of the retry's
    own reply). On virtual time: 40 rows at 10 a second, 40 workers, the second row fails once
    (after the first one's success: before any, a failure is an outage)."""
    from virtual_time import run_engine_virtual

    calls: dict[str, list[float]] = {}

    async def handler(request: JudgeRequest) -> JudgeReply:
        fails = len(calls) == 1 and request.row_id not in calls  # the run's second request fails once
        calls.setdefault(request.row_id, []).append(anyio.current_time())
        await anyio.sleep(0.3)
        if fails:
            raise TransientError("boom", status=500)
        return JudgeReply(OK_REPLY, prompt_tokens=10, completion_tokens=5)

    result = run_engine_virtual(config(write_pairs(40), tmp_path / "run", concurrency=40, rps=10),
                                provider=MockProvider(handler))
    assert result.complete and result.stats["retries"] == 1
    sent_first, sent_again = next(times for times in calls.values() if len(times) == 2)
    # The retry left with the next free place in the window (0.3 s of reply, a backoff of at
    # most 0.01 s, a send every 0.1 s), not after the 36 rows still in line (3.6 s more).
    assert sent_again - sent_first < 0.6, (sent_first, sent_again)


def _first_retry_gaps(write_pairs, tmp_path, fails: Callable[[int], bool], rows: int) -> list[float]:
    """A run on virtual time (replies take 0.1 s, backoff up to 2 s): ``fails(n)`` says whether
    the run's n-th request fails with a 500. Returns, for each row that failed its first attempt,
    the wait between that attempt's reply and the retry's send."""
    calls: dict[str, list[float]] = {}
    count = [0]

    async def handler(request: JudgeRequest) -> JudgeReply:
        calls.setdefault(request.row_id, []).append(anyio.current_time())
        count[0] += 1
        fail = len(calls[request.row_id]) == 1 and fails(count[0])
        await anyio.sleep(0.1)
        if fail:
            raise TransientError("boom", status=500)
        return JudgeReply(OK_REPLY, prompt_tokens=10, completion_tokens=5)

    result = run_engine_virtual(config(write_pairs(rows), tmp_path / "run", concurrency=1, backoff_base=2.0,
                                       backoff_cap=2.0), provider=MockProvider(handler))
    assert result.complete
    return [round(times[1] - times[0] - 0.1, 6) for times in calls.values() if len(times) == 2]


def test_a_lone_server_error_is_retried_at_once_while_the_server_answers_nearly_everything(write_pairs, tmp_path):
    # One request in twenty fails: each retry goes without its backoff (up to 2 s here), so a
    # lone 500 near a run's end costs one round trip, not a wait on top of it.
    gaps = _first_retry_gaps(write_pairs, tmp_path, lambda n: n % 20 == 10, rows=100)
    assert len(gaps) == 5 and gaps == [0.0] * 5


def test_a_server_failing_often_spends_the_quick_retries_and_retries_back_off_again(write_pairs, tmp_path):
    # Every row's first attempt fails (after the run's first request answered: before any
    # success that is an outage): ten quick retries (the allowance), then one for every ten
    # good replies; the others back off as before.
    gaps = _first_retry_gaps(write_pairs, tmp_path, lambda n: n > 1, rows=61)
    quick = sum(gap == 0.0 for gap in gaps)
    assert len(gaps) == 60 and 10 <= quick <= 16, gaps
    assert all(gap == 0.0 for gap in gaps[:10])


def test_the_quick_retry_allowance_refills_from_good_replies_and_never_covers_a_429() -> None:
    from batchjudge.core.types import RetryDecision, RetryKind
    from batchjudge.engine.retry import QuickRetries

    quick = QuickRetries(cap=2.0, refill=0.5)
    transient = RetryDecision(RetryKind.TRANSIENT)
    assert quick.take(transient) and quick.take(transient) and not quick.take(transient)
    quick.replied()
    assert not quick.take(transient)  # half a retry earned
    quick.replied()
    assert quick.take(transient)
    for _ in range(10):
        quick.replied()
    assert quick.allowance == 2.0  # capped
    assert not quick.take(RetryDecision(RetryKind.RATE_LIMIT))
    assert not quick.take(RetryDecision(RetryKind.TRANSIENT, retry_after=1.0))  # the server's wait is kept
    assert quick.allowance == 2.0
