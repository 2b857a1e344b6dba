"""Concurrency that sizes itself: the rule on plain data, the limiter it resizes through its
public protocol on virtual time, and a run told only ``--rps`` that reaches its pace."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import anyio
from virtual_time import clock, run_engine_virtual, run_virtual, sleep

from batchjudge import JudgeReply, JudgeRequest, MockProvider, RunConfig
from batchjudge.engine.limits import Limits, Reservation
from batchjudge.engine.sizing import Sizer, SizingTuning, size_concurrency

SPREAD = [0.15 + 0.3 * i / 99 for i in range(100)]
"""Latencies of a 300 ± 150 ms server: p90 0.42 s."""


# -- the rule, on plain data --------------------------------------------------------------


def test_before_the_first_replies_the_size_is_the_stated_start_within_the_ceiling() -> None:
    tuning = SizingTuning(start=32, min_samples=8)
    assert size_concurrency(pace=100, latencies=[0.3] * 7, ceiling=1024, tuning=tuning).concurrency == 32
    assert size_concurrency(pace=100, latencies=[], ceiling=10, tuning=tuning).concurrency == 10


def test_the_size_is_the_pace_times_the_p90_latency_times_the_margin() -> None:
    sizing = size_concurrency(pace=100, latencies=SPREAD, ceiling=1024, tuning=SizingTuning(margin=1.25))
    assert sizing.concurrency == 53  # ceil(100 x 0.42 x 1.25): the tail, not the mean (0.30)
    assert "100/s" in sizing.reason and "p90 0.42 s" in sizing.reason
    slow = size_concurrency(pace=50, latencies=[1.0 + 2.0 * i / 99 for i in range(100)], ceiling=1024)
    assert slow.concurrency == 175  # ceil(50 x 2.8 x 1.25): 2,000 ± 1,000 ms


def test_the_size_follows_the_pace_down_as_well_as_up() -> None:
    sizes = [size_concurrency(pace=pace, latencies=SPREAD, ceiling=1024).concurrency for pace in (1000, 100, 20)]
    assert sizes == [525, 53, 16]  # 20/s needs 11: the floor


def test_the_size_stays_between_the_floor_and_the_ceiling_and_says_when_the_ceiling_binds() -> None:
    tuning = SizingTuning(floor=4)
    assert size_concurrency(pace=1, latencies=SPREAD, ceiling=1024, tuning=tuning).concurrency == 4
    capped = size_concurrency(pace=1000, latencies=SPREAD, ceiling=64, tuning=tuning)
    assert capped.concurrency == 64 and capped.reason.startswith("ceiling")
    assert size_concurrency(pace=1, latencies=SPREAD, ceiling=2, tuning=tuning).concurrency == 2


def test_with_no_pace_known_the_size_grows_from_the_measured_rate_and_never_shrinks() -> None:
    tuning = SizingTuning(growth=4.0)
    grown = size_concurrency(pace=None, latencies=SPREAD, ceiling=1024, current=32, measured_rate=100, tuning=tuning)
    assert grown.concurrency == 168 and "no limit known" in grown.reason  # 100/s x 0.42 s x 4
    paused = size_concurrency(pace=None, latencies=SPREAD, ceiling=1024, current=168, measured_rate=0, tuning=tuning)
    assert paused.concurrency == 168  # a pause (a cooldown, an outage) is not a slower server


# -- the mechanism, through its public protocol -----------------------------------------------


def test_the_sizer_resizes_the_limiter_once_replies_are_timed_and_not_more_often_than_asked() -> None:
    async def main() -> list[int]:
        limiter = anyio.CapacityLimiter(1)
        sizer = Sizer(limiter, 1024, clock=clock, tuning=SizingTuning(start=32, every_s=0.25))
        sizes = [int(limiter.total_tokens)]
        for latency in SPREAD:
            sizer.replied(latency)
        sizer.resize(100.0)
        sizes.append(int(limiter.total_tokens))
        sizer.resize(1000.0)  # asked again at once: nothing changes yet
        sizes.append(int(limiter.total_tokens))
        await sleep(0.25)
        sizer.resize(1000.0)
        sizes.append(int(limiter.total_tokens))
        return sizes

    assert run_virtual(main) == [32, 53, 53, 525]


def test_a_smaller_size_keeps_the_slots_taken_and_a_larger_one_wakes_the_first_waiters() -> None:
    async def main() -> tuple[list[str], int]:
        limiter = anyio.CapacityLimiter(1)
        sizer = Sizer(limiter, 8, clock=clock, tuning=SizingTuning(start=8, min_samples=1, floor=1, every_s=0.0))
        order: list[str] = []
        holders = [object() for _ in range(8)]
        for holder in holders:
            limiter.acquire_on_behalf_of_nowait(holder)
        sizer.replied(1.0)
        sizer.resize(2.0)  # 2/s x 1 s x 1.25: 3 slots, 8 taken: all kept
        taken = limiter.borrowed_tokens

        async def waiter(name: str) -> None:
            async with limiter:
                order.append(name)
                await sleep(10)

        async with anyio.create_task_group() as tg:
            for name in "abc":
                tg.start_soon(waiter, name)
                await sleep(0.01)
            for holder in holders[:5]:  # 8 -> 3 borrowed: still no room under 3
                limiter.release_on_behalf_of(holder)
            await sleep(1)
            order.append("|")
            sizer.resize(4.0)  # 5 slots: the first two waiters go
            await sleep(1)
            order.append("|")
            sizer.resize(6.0)  # 8 slots: the last one goes
            await sleep(1)
            tg.cancel_scope.cancel()
        return order, int(taken)

    order, taken = run_virtual(main)
    assert taken == 8
    assert order[0] == order[3] == "|" and sorted(order[1:3]) == ["a", "b"] and order[4:] == ["c"]


# -- in the limits and in a run -----------------------------------------------------------------


def test_a_flag_ten_times_above_the_servers_limit_converges_to_the_real_one() -> None:
    """``--rps 1000`` on a server that admits 100 a second and announces nothing: the first 429
    shows what the server admitted, the pace drops to it, and concurrency follows."""

    async def main() -> tuple[str, int, int]:
        limits = Limits(concurrency=1024, rps=1000, clock=clock, sleep=sleep)
        sent = []
        for _ in range(101):
            reservation = Reservation(10.0)
            await limits.before_send(reservation)
            sent.append(reservation)
        first = int(limits.capacity.total_tokens)
        limits.on_rate_limited(1.0, sent[-1])  # the 101st in a second was refused
        await sleep(1.0)
        for reservation in sent[:100]:
            limits.settle(reservation, JudgeReply("{}", prompt_tokens=5, completion_tokens=5))
        await sleep(0.5)
        limits.settle(sent[0], JudgeReply("{}", prompt_tokens=5, completion_tokens=5))
        return limits.stats.limits, first, int(limits.capacity.total_tokens)

    shown, first, after = run_virtual(main)
    assert first == 32
    assert "/s estimate" in shown and "1000/s" not in shown
    assert "in flight" in shown
    assert after < 200  # sized for about 100/s, not 1,000/s


def test_a_run_told_only_rps_keeps_enough_in_flight_to_reach_its_pace(
    tmp_path: Path, write_pairs: Callable[..., Path],
) -> None:
    """The former default (16 in flight) held a 300 ms server to 53 requests a second."""
    sent: list[float] = []

    async def handler(request: JudgeRequest) -> JudgeReply:
        sent.append(anyio.current_time())
        await anyio.sleep(0.3)
        return JudgeReply('{"consistency": 1, "reason": "fine"}', prompt_tokens=10, completion_tokens=5)

    config = RunConfig(inputs=[write_pairs(600)], out=tmp_path / "run", rps=100, max_retries=1)
    result = run_engine_virtual(config, provider=MockProvider(handler))
    assert result.complete
    assert sent[-1] - sent[0] < 7.0  # 600 requests at 100 a second: 6 s and the start
    assert 30 <= result.stats["concurrency"] <= 60
    assert "in flight" in result.stats["limits"] and "100/s" in result.stats["limits"]


def test_concurrency_given_is_a_ceiling_the_size_never_passes(
    tmp_path: Path, write_pairs: Callable[..., Path],
) -> None:
    async def handler(request: JudgeRequest) -> JudgeReply:
        await anyio.sleep(0.3)
        return JudgeReply('{"consistency": 1, "reason": "fine"}', prompt_tokens=10, completion_tokens=5)

    config = RunConfig(inputs=[write_pairs(100)], out=tmp_path / "run", rps=100, concurrency=8, max_retries=1)
    result = run_engine_virtual(config, provider=MockProvider(handler))
    assert result.stats["concurrency"] == 8 and "ceiling" in result.stats["limits"]
