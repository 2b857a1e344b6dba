"""Limits that find themselves: adopted from the server's headers, reconciled with what others
use, estimated at the first 429 when nothing is announced, and paced by AIMD afterwards."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anyio
import orjson
import pytest
from emulator_fixtures import TEST_KEY, StartEmulator, emulator  # noqa: F401  (fixture)
from virtual_time import clock, run_virtual, sleep

from batchjudge import RunConfig, run
from batchjudge.core.types import JudgeReply, JudgeRequest
from batchjudge.emulator import EmulatorServer
from batchjudge.engine.limits import Limits, Reservation
from batchjudge.engine.ratelimits import Announced, Quota, read_rate_headers
from batchjudge.errors import QuotaExhaustedError


def request() -> JudgeRequest:
    return JudgeRequest("r", [{"role": "user", "content": "x"}], "p", "h", "m", prompt_tokens=100)


def reply(headers: dict[str, str]) -> JudgeReply:
    return JudgeReply('{"consistency": 1}', prompt_tokens=100, completion_tokens=5, headers=headers)


# -- reading the headers ----------------------------------------------------------------------


def test_every_known_header_family_is_read() -> None:
    mistral = read_rate_headers({
        "x-ratelimit-limit-req-minute": "600", "x-ratelimit-remaining-req-minute": "599",
        "x-ratelimit-limit-tokens-minute": "500000", "x-ratelimit-remaining-tokens-minute": "499948",
        "x-ratelimit-limit-tokens-month": "1000000000", "x-ratelimit-remaining-tokens-month": "999",
        "x-ratelimit-tokens-query-cost": "52",
    })  # fmt: skip
    assert mistral == Announced(
        requests_minute=Quota(600, 599), tokens_minute=Quota(500000, 499948),
        tokens_month=Quota(1e9, 999), query_cost=52,
    )  # fmt: skip
    second = read_rate_headers({"x-ratelimit-limit-req-second": "5", "x-ratelimit-remaining-req-second": "4"})
    assert second.requests_second == Quota(5, 4)
    bysize = read_rate_headers({"ratelimitbysize-limit": "2000000", "ratelimitbysize-remaining": "10",
                                "x-ratelimitbysize-limit-month": "9", "ratelimitbysize-query-cost": "7"})
    assert bysize.tokens_minute == Quota(2e6, 10) and bysize.tokens_month == Quota(9, None)
    assert bysize.query_cost == 7
    openai = read_rate_headers({"x-ratelimit-limit-requests": "60", "x-ratelimit-limit-tokens": "9000",
                                "x-ratelimit-remaining-tokens": "8000"})
    assert openai.requests_minute == Quota(60) and openai.tokens_minute == Quota(9000, 8000)
    assert read_rate_headers({"x-ratelimit-limit-req-minute": "lots"}).empty
    assert read_rate_headers({}).empty


# -- adopting and reconciling -----------------------------------------------------------------


def test_limits_the_server_announces_are_adopted_when_no_flag_sets_them() -> None:
    async def main() -> Limits:
        limits = Limits(concurrency=8, clock=clock, sleep=sleep)
        limits.settle(Reservation(100.0, 100), reply({
            "x-ratelimit-limit-req-second": "20", "x-ratelimit-limit-req-minute": "600",
            "x-ratelimit-limit-tokens-minute": "50000",
        }))  # fmt: skip
        return limits

    limits = run_virtual(main)
    assert limits.second.limit == 20 and limits.second.source == "server"
    assert limits.minute.limit == 600 and limits.tokens is not None and limits.tokens.limit == 50000
    assert limits.stats.limits == ("20/s server, 600/min server, 50,000 tok/min server, "
                                   "in flight 8 (ceiling; start: no latency measured yet)")


def test_a_flag_wins_unless_the_server_announces_less_which_is_obeyed_with_one_notice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> tuple[Limits, Limits]:
        higher = Limits(concurrency=8, rps=10, clock=clock, sleep=sleep)
        higher.settle(Reservation(1.0), reply({"x-ratelimit-limit-req-second": "50"}))
        lower = Limits(concurrency=8, rps=100, clock=clock, sleep=sleep)
        for _ in range(3):
            lower.settle(Reservation(1.0), reply({"x-ratelimit-limit-req-second": "40"}))
        return higher, lower

    with caplog.at_level(logging.WARNING, logger="batchjudge"):
        higher, lower = run_virtual(main)
    assert higher.second.limit == 10 and higher.second.source == "flag"
    assert lower.second.limit == 40 and lower.second.source == "server"
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and "the server allows 40 requests per second, fewer than the 100" in notices[0]


def test_requests_counted_by_the_server_but_not_sent_by_this_run_take_room() -> None:
    async def main() -> int:
        limits = Limits(concurrency=8, rps=10, clock=clock, sleep=sleep)
        first = limits.charge(request())
        await limits.before_send(first)
        # the server has seen 7 requests in this second (this one included): 6 are someone else's
        limits.settle(first, reply({"x-ratelimit-limit-req-second": "10", "x-ratelimit-remaining-req-second": "3"}))
        start = clock()
        for _ in range(5):
            await limits.before_send(limits.charge(request()))
        return round(clock() - start, 3)

    assert run_virtual(main) == pytest.approx(1.01, abs=0.01)  # 1 + 5 foreign + 4 fit; the 5th waits


def test_a_run_alone_at_the_announced_limit_is_never_slowed_by_its_own_sends_as_foreign() -> None:
    # Replies come back 0.3 s after their send, when 3 more sends have pushed the oldest of
    # the reply's window out of the pacer: they must still count as this run's own.
    async def main() -> int:
        limits = Limits(concurrency=8, clock=clock, sleep=sleep)
        server: list[float] = []

        async def one() -> None:
            reservation = limits.charge(request())
            await limits.before_send(reservation)
            server.append(clock())
            used = sum(1 for t in server if t > clock() - 1.0)
            await sleep(0.3)
            limits.settle(reservation, reply({"x-ratelimit-limit-req-second": "10",
                                              "x-ratelimit-remaining-req-second": str(10 - used)}))
            limits.after_send(reservation)

        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(one)
        return sum(1 for t in server if t < 5.0)

    assert run_virtual(main) >= 48  # the probe, then 10 a second from its reply at 0.3 s (41 when own sends counted as foreign)


def test_a_request_written_late_counts_from_when_it_left_so_the_next_window_waits_for_it() -> None:
    async def main() -> list[float]:
        limits = Limits(concurrency=8, rps=2, second_margin=0.0, clock=clock, sleep=sleep)
        first = limits.charge(request())
        await limits.before_send(first)
        limits.after_send(first)
        second = limits.charge(request())
        await limits.before_send(second)
        await sleep(0.25)  # its connection took that long to open
        limits.written(second, False)
        times = []
        for _ in range(2):
            reservation = limits.charge(request())
            await limits.before_send(reservation)
            times.append(round(reservation.sent_at, 3))
        return [round(first.sent_at, 3), round(second.sent_at, 3), *times]

    # the second was let go at 0.45 s (0.9 of the average gap) and written at 0.7 s: the fourth
    # waits for 1.7 s, not 1.45 s
    assert run_virtual(main) == [0.0, 0.7, 1.15, 1.7]


def test_a_request_that_opened_a_connection_counts_from_a_guard_after_its_write() -> None:
    async def main() -> list[float]:
        limits = Limits(concurrency=8, rps=1, second_margin=0.0, clock=clock, sleep=sleep)
        first = limits.charge(request())
        await limits.before_send(first)  # the probe
        limits.after_send(first)
        second = limits.charge(request())
        await limits.before_send(second)
        await sleep(0.02)  # its connection took that long to open
        limits.written(second, True)  # the server may accept the connection a little later
        await sleep(0.3)
        limits.after_send(second)  # its reply moves nothing more
        third = limits.charge(request())
        await limits.before_send(third)
        return [round(r.sent_at, 3) for r in (first, second, third)]

    # the second was let go at 1.0 s and written at 1.02 s: counted from 1.07 s, so the third
    # waits for 2.07 s (2.0 s counted from the pacer, 2.32 s from the reply)
    assert run_virtual(main) == [0.0, 1.07, 2.07]


def test_a_spent_monthly_budget_stops_instead_of_retrying() -> None:
    async def main() -> None:
        limits = Limits(concurrency=2, clock=clock, sleep=sleep)
        limits.on_rate_limited(None, headers={"x-ratelimit-limit-tokens-month": "1000",
                                              "x-ratelimit-remaining-tokens-month": "0"})

    with pytest.raises(QuotaExhaustedError, match="monthly token budget"):
        run_virtual(main)


# -- estimating, then AIMD --------------------------------------------------------------------


def test_without_any_announced_limit_the_first_429_sets_an_estimate_from_what_was_admitted() -> None:
    async def main() -> tuple[float | None, str | None, list[float]]:
        limits = Limits(concurrency=64, clock=clock, sleep=sleep)
        probe = limits.charge(request())
        await limits.before_send(probe)  # the first request goes alone...
        assert probe.probe
        limits.after_send(probe)  # ...and its reply announced nothing
        for _ in range(24):  # unpaced: a burst, of which the server admitted 25 in the second
            await limits.before_send(limits.charge(request()))
        await sleep(0.2)
        refused = limits.charge(request())
        await limits.before_send(refused)
        limits.on_rate_limited(1.0, refused)
        later = []
        for _ in range(30):
            r = limits.charge(request())
            await limits.before_send(r)
            later.append(round(r.sent_at, 3))
        return limits.second.limit, limits.second.source, later

    limit, source, later = run_virtual(main)
    assert limit == 25 and source == "estimate"
    for start in later:  # paced: never more than the estimate in any second
        assert sum(1 for t in later if start <= t < start + 1.0) <= 25


def test_refused_requests_answered_out_of_order_leave_the_estimate_counted_before_the_first() -> None:
    """A burst past a silent server's limit: several requests are refused together and their
    429s come back in any order. Counted before a later one, the earlier refused ones looked
    admitted (a limit of 102 for 100, and a 429 seconds later); the earliest sets it."""

    async def main() -> float | None:
        limits = Limits(concurrency=64, clock=clock, sleep=sleep)
        probe = limits.charge(request())
        await limits.before_send(probe)
        limits.after_send(probe)  # its reply announced nothing
        sent = [probe]
        for _ in range(29):  # unpaced: the server admitted 25, refused the rest
            await sleep(0.01)
            reservation = limits.charge(request())
            await limits.before_send(reservation)
            sent.append(reservation)
        limits.on_rate_limited(1.0, sent[29])  # the last refused answers first...
        limits.on_rate_limited(1.0, sent[25])  # ...the first refused in the same episode
        return limits.second.limit

    assert run_virtual(main) == 25


def test_a_429_from_the_token_window_is_not_read_as_a_request_limit() -> None:
    tokens_left = {"x-ratelimit-limit-tokens-minute": "30000", "x-ratelimit-remaining-tokens-minute": "40"}

    async def main() -> tuple[Limits, list[float]]:
        limits = Limits(concurrency=64, clock=clock, sleep=sleep)
        probe = limits.charge(request())
        await limits.before_send(probe)
        limits.settle(probe, reply({**tokens_left, "x-ratelimit-remaining-tokens-minute": "29000"}))
        limits.after_send(probe)
        sent = []
        for _ in range(5):
            await sleep(0.01)
            r = limits.charge(request())
            await limits.before_send(r)
            sent.append(r)
        assert limits.tokens is not None
        before = limits.tokens.used
        # Short and long waits alike: the headers say the request did not fit in the tokens left.
        limits.on_rate_limited(1.0, sent[-1], tokens_left)
        await sleep(1.5)
        limits.on_rate_limited(20.0, sent[-2], tokens_left)
        return limits, [before, limits.tokens.used]

    limits, used = run_virtual(main)
    assert limits.second.limit is None and limits.minute.limit is None
    assert limits.tokens is not None and limits.tokens.limit == 30000
    assert used[1] == pytest.approx(30000 - 40)  # the server's count of the window is taken
    assert "/s" not in limits.stats.limits and "estimate" not in limits.stats.limits


def test_a_429_from_a_spent_request_window_names_that_window() -> None:
    spent = {"x-ratelimit-limit-req-minute": "600", "x-ratelimit-remaining-req-minute": "0",
             "x-ratelimit-limit-tokens-minute": "500000", "x-ratelimit-remaining-tokens-minute": "400000"}

    async def main() -> Limits:
        limits = Limits(concurrency=8, rps=100, rpm=600, clock=clock, sleep=sleep)
        r = limits.charge(request())
        await limits.before_send(r)
        limits.on_rate_limited(1.0, r, spent)  # a short wait, but the minute window said it
        return limits

    limits = run_virtual(main)
    assert limits.minute.limit == 600 and limits.minute.factor < 1.0
    assert limits.second.factor == 1.0


def test_429s_despite_pacing_cut_the_rate_and_calm_brings_it_back() -> None:
    async def main() -> list[float]:
        limits = Limits(concurrency=8, rps=100, clock=clock, sleep=sleep, calm_seconds=10.0)
        assert limits.second.pacer is not None
        rates = [limits.second.pacer.rate]
        for _ in range(3):
            limits.on_rate_limited(1.0)
            await sleep(1.5)
            rates.append(limits.second.pacer.rate)
        for _ in range(20):
            await sleep(10.0)
            limits.on_success()
        rates.append(limits.second.pacer.rate)
        return rates

    rates = run_virtual(main)
    assert rates[1] < rates[0] and rates[2] < rates[1] and rates[3] < rates[2]
    assert rates[3] >= 100 * 0.9 * 0.99  # a known limit is never cut below 90%
    assert rates[-1] == pytest.approx(100, rel=0.02)


# -- end to end against the emulator ----------------------------------------------------------


def _run(server: EmulatorServer, data: Path, out: Path, **options: object) -> dict[str, object]:
    config = RunConfig(inputs=[data], out=out, provider="mistral", base_url=server.url, api_key=TEST_KEY,
                       concurrency=32, check_labels=False, **options)  # type: ignore[arg-type]
    result = run(config)
    assert result.complete
    stats = server.stats()["keys"]
    (per_key,) = stats.values()
    return {"stats": result.stats, "key": per_key}


def test_a_server_announcing_its_limit_is_paced_without_flags_and_without_violations(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator(rps=20, headers="second", latency_ms=20, jitter_ms=5)
    seen = _run(server, write_pairs(80), tmp_path / "run")
    assert "/s server" in str(seen["stats"]["limits"])  # type: ignore[index]
    # The probe learned the limit first; an in-process server stamps arrivals as the GIL lets
    # it, so on a loaded machine one 429 episode from that jitter is possible, not a second.
    assert seen["key"]["rate_limited"] <= 2  # type: ignore[index]
    assert seen["key"]["retry_after_violations"] == 0  # type: ignore[index]


def test_a_server_announcing_nothing_is_estimated_after_one_episode(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator(rps=20, headers="none", latency_ms=20, jitter_ms=5)
    seen = _run(server, write_pairs(120), tmp_path / "run")
    assert "/s estimate" in str(seen["stats"]["limits"])  # type: ignore[index]
    assert seen["key"]["retry_after_violations"] == 0  # type: ignore[index]


# -- budgets ----------------------------------------------------------------------------------


def test_a_token_allowance_stops_sending_cleanly_and_a_larger_one_resumes(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    from virtual_time import run_engine_virtual

    from batchjudge import MockProvider

    def handler(req: JudgeRequest) -> JudgeReply:
        return JudgeReply('{"consistency": 1}', prompt_tokens=100, completion_tokens=10)

    data, out = write_pairs(40), tmp_path / "run"
    config = RunConfig(inputs=[data], out=out, concurrency=4, max_total_tokens=1000, check_labels=False)
    stopped = run_engine_virtual(config, provider=MockProvider(handler))
    assert not stopped.complete and stopped.exit_code == 1
    assert stopped.error is not None and "--max-total-tokens 1,000" in stopped.error
    used = stopped.stats["prompt_tokens"] + stopped.stats["completion_tokens"]
    assert 0 < used <= 1000 and stopped.counts["done"] == used // 110  # every answered row kept
    for _ in range(3):  # the allowance covers every session of the run, not each one
        again = run_engine_virtual(config, provider=MockProvider(handler))
        assert not again.complete
    recorded = orjson.loads((out / "run.json").read_bytes())["tokens"]
    assert recorded["prompt"] + recorded["completion"] <= 1000
    assert again.stats["finished"] == 0  # no room left for another row
    config.max_total_tokens = 10_000
    resumed = run_engine_virtual(config, provider=MockProvider(handler))
    assert resumed.complete and resumed.counts["done"] == 40


def test_a_cost_allowance_needs_a_known_price(tmp_path: Path, write_pairs: Callable[..., Path]) -> None:
    from batchjudge import ConfigError

    config = RunConfig(inputs=[write_pairs(2)], out=tmp_path / "run", model="no-such-model", max_cost=1.0)
    with pytest.raises(ConfigError, match="no price is known for model 'no-such-model'"):
        run(config)
