"""One shared limiter, many workers: the limit is shared, never multiplied; a 429 anywhere
pauses everyone; leases come back; the judge runs unchanged on leased limits. All of it runs
in one process on virtual time, without Ray (the limiter and worker do not need it).

Workers take their limits from the limiter (a flag, or what it learns from the replies), so a
worker is built from the limiter and its own concurrency alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from emulator_fixtures import emulator  # noqa: F401 - a fixture
from virtual_time import clock, run_virtual, sleep

from batchjudge import RunConfig
from batchjudge.core.results import RowResult
from batchjudge.core.types import JudgeReply, JudgeRequest
from batchjudge.engine.limits import Reservation
from batchjudge.engine.source import open_source
from batchjudge.ray._leased import LeasedLimits
from batchjudge.ray._limiter import SharedLimiter
from batchjudge.ray._worker import JudgeWorker


def leased(limiter: SharedLimiter, *, concurrency: int = 10) -> LeasedLimits:
    return LeasedLimits(limiter, concurrency=concurrency, expected_completion_tokens=10, clock=clock, sleep=sleep)


def request(prompt_tokens: int = 0) -> JudgeRequest:
    """A request charged ``prompt_tokens`` plus the 10 completion tokens a worker expects."""
    return JudgeRequest("row", [], "premise", "hypothesis", "model", max_tokens=10, prompt_tokens=prompt_tokens)


async def send(limits: LeasedLimits, prompt_tokens: int = 0, *, latency: float = 0.0) -> Reservation:
    """One request through ``limits`` as the judge sends it: wait, send, the reply after
    ``latency`` seconds (using what was charged), done."""
    reservation = limits.charge(request(prompt_tokens))
    await limits.before_send(reservation)
    await sleep(latency)
    limits.on_success()
    limits.settle(reservation, JudgeReply("", prompt_tokens=prompt_tokens, completion_tokens=10))
    limits.after_send(reservation)
    return reservation


async def with_workers(workers: list[LeasedLimits], body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` while every worker's reports and broadcasts flow, then stop them."""
    async with anyio.create_task_group() as group:
        for worker in workers:
            group.start_soon(worker.run)
        await body()
        group.cancel_scope.cancel()


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(len([u for u in times[i:] if u < t + window]) for i, t in enumerate(times))


def test_four_workers_together_never_exceed_one_limit_and_nearly_reach_it():
    async def main() -> list[float]:
        limiter = SharedLimiter(concurrency=40, rps=20, clock=clock, sleep=sleep)
        workers = [leased(limiter) for _ in range(4)]
        sent: list[float] = []

        async def sender(limits: LeasedLimits) -> None:
            for _ in range(25):
                reservation = await send(limits, latency=0.3)
                sent.append(reservation.sent_at)

        async def senders() -> None:
            async with anyio.create_task_group() as group:
                for worker in workers:
                    for _ in range(3):
                        group.start_soon(sender, worker)

        await with_workers(workers, senders)
        return sent

    sent = sorted(run_virtual(main))
    assert len(sent) == 300
    assert most_in_any_window(sent, 1.0) <= 20  # one limit for all four, never four limits
    # ...and all of it: each window of 1.05 s (the shared pacer's margin) opens with a send
    assert all(sent[20 * k] <= 1.05 * k + 1e-6 for k in range(14))


@pytest.mark.parametrize(("new_connection", "written_after", "reply_after", "left_at"), [
    (False, 0.2, 0.0, 0.2),  # written late (a busy loop): from its write
    (True, 0.0, 0.3, 0.05),  # opened a connection: from a guard after its write, as in one process
    (True, 0.2, 2.0, 0.2),  # a worker still starting: from its write, long before its reply
], ids=["written-late", "new-connection", "new-connection-written-late"])
def test_a_send_that_left_late_holds_its_window_place_from_when_it_left_for_every_worker(
    new_connection, written_after, reply_after, left_at,
):
    # The server counts its window by arrival: a send that left after its booked time must
    # push back the sends another worker is lent a window later.
    async def main() -> list[float]:
        limiter = SharedLimiter(concurrency=10, rps=2, clock=clock, sleep=sleep)
        slow, other = leased(limiter), leased(limiter)
        sent: list[float] = []

        async def slow_send() -> None:
            reservation = slow.charge(request())
            await slow.before_send(reservation)
            await sleep(written_after)
            slow.written(reservation, new_connection)
            await sleep(reply_after)
            slow.after_send(reservation)

        async def body() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(slow_send)
                await sleep(0.35)  # a report goes out every 0.1 s
                for _ in range(2):
                    sent.append((await send(other)).sent_at)

        await with_workers([slow, other], body)
        return sent

    second, third = run_virtual(main)
    assert second < 1.0  # the window's second send goes at once...
    assert third >= left_at + 1.0  # ...the third a full window after the first really left


async def sends_around_a_429(refused: LeasedLimits, other: LeasedLimits, *, hit_after: float, retry_after: float,
                             until: float, gap: float) -> tuple[float, list[float]]:
    """``other`` sends every ``gap`` seconds until ``until`` while ``refused`` meets a 429 with
    ``retry_after`` after ``hit_after`` seconds: (when the 429 came, ``other``'s send times)."""
    sent: list[float] = []

    async def steady() -> None:
        while clock() < until:
            sent.append((await send(other)).sent_at)
            await sleep(gap)

    async with anyio.create_task_group() as group:
        group.start_soon(steady)
        await sleep(hit_after)
        hit_at = clock()
        refused.on_rate_limited(retry_after)
    return hit_at, sent


def test_a_429_seen_by_one_worker_pauses_every_worker_until_its_retry_after():
    async def main() -> tuple[float, list[float]]:
        limiter = SharedLimiter(concurrency=20, clock=clock, sleep=sleep)
        first, other = leased(limiter), leased(limiter)
        outcome: tuple[float, list[float]] = (0.0, [])

        async def body() -> None:
            nonlocal outcome
            outcome = await sends_around_a_429(first, other, hit_after=1.05, retry_after=2.0, until=5.0, gap=0.1)

        await with_workers([first, other], body)
        return outcome

    hit_at, sent = run_virtual(main)
    assert [t for t in sent if hit_at < t < hit_at + 2.0] == []
    assert any(t >= hit_at + 2.0 for t in sent)  # and it goes on afterwards
    assert sum(t < hit_at for t in sent) >= 10


def test_repeated_429s_shrink_every_workers_concurrency_and_calm_grows_it_back():
    async def main() -> tuple[int, int, int]:
        limiter = SharedLimiter(concurrency=40, clock=clock, sleep=sleep)
        first, other = leased(limiter), leased(limiter)
        sizes: list[int] = []

        async def body() -> None:
            await send(other)
            sizes.append(int(other.capacity.total_tokens))
            for _ in range(3):  # three episodes, each after the last one's pause ended
                first.on_rate_limited(0.1)
                await sleep(0.5)
            sizes.append(int(other.capacity.total_tokens))
            for _ in range(50 * 10):
                first.on_success()
            await sleep(0.5)
            sizes.append(int(other.capacity.total_tokens))

        await with_workers([first, other], body)
        return sizes[0], sizes[1], sizes[2]

    before, shrunk, recovered = run_virtual(main)
    assert (before, recovered) == (10, 10)
    assert shrunk < before


def test_unused_send_times_and_tokens_are_given_back():
    async def main() -> tuple[float, float, int, int]:
        limiter = SharedLimiter(concurrency=8, rps=10, tpm=6000, horizon=1.0, clock=clock, sleep=sleep)
        pacer, window = limiter.limits.second.pacer, limiter.limits.tokens
        assert pacer is not None and window is not None
        worker = leased(limiter)
        await worker._lease(slots=8, tokens=800)  # what a lease for eight senders in line gets
        booked, tokens_leased = pacer.count_between(-1.0, 10.0), window.used
        await worker.before_send(worker.charge(request(90)))  # one of them sends (100 tokens)
        await worker.aclose()
        return tokens_leased, window.used, booked, pacer.count_between(-1.0, 10.0)

    tokens_leased, tokens_after, booked, after = run_virtual(main)
    assert tokens_leased == pytest.approx(800) and tokens_after == pytest.approx(100)
    assert booked == 8 and after == 1  # the one send made stays; seven times come back


def test_a_workers_429_from_the_token_window_sets_no_request_limit():
    tokens_left = {"x-ratelimit-limit-tokens-minute": "30000", "x-ratelimit-remaining-tokens-minute": "40"}

    async def main() -> SharedLimiter:
        limiter = SharedLimiter(concurrency=8, tpm=30000, clock=clock, sleep=sleep)
        worker = leased(limiter)

        async def body() -> None:
            for _ in range(5):
                await send(worker, 90)
                await sleep(0.01)
            refused = worker.charge(request(90))  # 100 tokens, more than the 40 left
            await worker.before_send(refused)
            worker.on_rate_limited(1.0, refused, tokens_left)
            await sleep(0.5)  # its report reaches the limiter

        await with_workers([worker], body)
        return limiter

    limiter = run_virtual(main)
    assert limiter.limits.stats.rate_limited == 1
    assert limiter.limits.second.limit is None and limiter.limits.minute.limit is None


def test_a_token_limit_is_shared_by_the_workers_not_multiplied():
    async def main() -> tuple[list[float], float]:
        limiter = SharedLimiter(concurrency=8, tpm=6000, clock=clock, sleep=sleep)
        workers = [leased(limiter) for _ in range(2)]
        sent: list[float] = []

        async def body() -> None:
            async def sender(limits: LeasedLimits) -> None:
                for _ in range(40):
                    sent.append((await send(limits, 490)).sent_at)  # 500 tokens each

            async with anyio.create_task_group() as group:
                for worker in workers:
                    group.start_soon(sender, worker)

        await with_workers(workers, body)
        return sent, clock()

    sent, took = run_virtual(main)
    assert len(sent) == 80 and most_in_any_window(sent, 60.0) <= 12  # 6,000 tokens a minute for both
    assert 360 <= took <= 370  # 40,000 tokens: six full minutes, then the last 4,000


def test_the_online_judge_runs_unchanged_in_a_worker_and_gives_the_single_process_results(write_pairs, tmp_path):
    import batchjudge
    import polars as pl

    data = write_pairs(60)
    config = RunConfig(inputs=[data], out=tmp_path / "run", provider="local", rps=50, concurrency=8)
    single = pl.read_parquet(batchjudge.run(config).run_dir + "/results/*.parquet").sort("row_id")
    rows = [row for batch in open_source([data]).batches() for row in batch]

    async def main() -> list[RowResult | None]:
        limiter = SharedLimiter(concurrency=8, rps=50, clock=clock, sleep=sleep)
        worker = JudgeWorker(config, [limiter], workers=2, keyed=True, clock=clock, sleep=sleep)
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run_limits)
            results = await worker.judge_rows(rows)
            group.cancel_scope.cancel()
        await worker.aclose()
        return results

    results = run_virtual(main)
    assert None not in results  # every row has its result
    table = pl.DataFrame([dataclasses.asdict(r) for r in results if r is not None]).sort("row_id")
    same = [c for c in single.columns if c != "latency_ms"]
    assert table.select(same).equals(single.select(same))


def test_rows_go_to_the_endpoint_with_the_least_in_flight(emulator, tmp_path: Path, write_pairs):
    fast, slow = emulator(latency_ms=10), emulator(latency_ms=400)
    data = write_pairs(120)
    config = RunConfig(inputs=[data], out=tmp_path / "unused", provider="mistral", base_url=[fast.url, slow.url],
                       api_key="test-key-not-secret", concurrency=8, engine="ray")
    rows = [row for batch in open_source([data]).batches() for row in batch]

    async def main() -> list[str | None]:
        limiters = [SharedLimiter(concurrency=8), SharedLimiter(concurrency=8)]
        worker = JudgeWorker(config, limiters, workers=1, keyed=True)
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run_limits)
            results = await worker.judge_rows(rows)
            group.cancel_scope.cancel()
        await worker.aclose()
        return [r.status if r is not None else None for r in results]

    statuses = anyio.run(main)
    assert statuses == ["ok"] * 120
    fast_n, slow_n = fast.stats()["chat_completions"], slow.stats()["chat_completions"]
    assert fast_n + slow_n == 120
    assert slow_n >= 1 and fast_n > 3 * slow_n


def test_a_worker_judges_its_block_with_the_collector_tuned_and_puts_it_back(emulator, tmp_path: Path, write_pairs):  # noqa: F811
    import gc

    from batchjudge.engine.collector import GEN0_THRESHOLD

    server = emulator(latency_ms=200)
    data = write_pairs(40)
    config = RunConfig(inputs=[data], out=tmp_path / "unused", provider="mistral", base_url=server.url,
                       api_key="test-key-not-secret", concurrency=8, engine="ray")
    rows = [row for batch in open_source([data]).batches() for row in batch]
    before = gc.get_threshold()
    during: list[int] = []

    async def main() -> None:
        worker = JudgeWorker(config, [SharedLimiter(concurrency=8)], workers=1, keyed=True)
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run_limits)

            async def watch() -> None:
                while True:
                    during.append(gc.get_threshold()[0])
                    await anyio.sleep(0.05)

            group.start_soon(watch)
            await worker.judge_rows(rows)
            group.cancel_scope.cancel()
        await worker.aclose()

    anyio.run(main)
    assert during and min(during[1:]) >= max(before[0], GEN0_THRESHOLD)  # from the block's first await on
    assert gc.get_threshold() == before


def test_each_worker_sizes_its_concurrency_for_the_shared_pace_under_its_ceiling():
    """Two workers under one 100/s limit, replies in 0.3 s: each keeps what the pace needs
    (100/s x 0.3 s x 1.25: 38), not its whole ceiling (the rows do not split evenly)."""

    async def main() -> list[int]:
        limiter = SharedLimiter(concurrency=1024, rps=100, clock=clock, sleep=sleep)
        workers = [leased(limiter, concurrency=512) for _ in range(2)]

        async def one(worker: LeasedLimits) -> None:
            await send(worker, latency=0.3)

        async def senders() -> None:
            async with anyio.create_task_group() as group:
                for worker in workers:
                    for _ in range(20):
                        group.start_soon(one, worker)
            await sleep(0.5)  # past the rule's quarter second: the last replies resize
            async with anyio.create_task_group() as group:
                for worker in workers:
                    group.start_soon(one, worker)

        await with_workers(workers, senders)
        return [int(worker.capacity.total_tokens) for worker in workers]

    assert run_virtual(main) == [38, 38]
