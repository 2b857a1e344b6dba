"""One shared limiter, many workers: the limit is shared, never multiplied; a 429 anywhere
pauses everyone; leases come back; the judge runs unchanged on leased limits. All of it runs
in one process on virtual time, without Ray (the limiter and worker do not need it)."""

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
from batchjudge.core.types import JudgeReply
from batchjudge.engine.source import open_source
from batchjudge.engine.stats import RunStats
from batchjudge.ray._leased import LeasedLimits
from batchjudge.ray._limiter import SharedLimiter
from batchjudge.ray._worker import JudgeWorker


def leased(limiter: SharedLimiter, *, concurrency: int = 10, paced: bool = True, tpm: float | None = None) -> LeasedLimits:
    return LeasedLimits(limiter, concurrency=concurrency, paced=paced, tpm=tpm, expected_completion_tokens=10,
                        clock=clock, sleep=sleep)


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
                await limits.before_send(0)
                sent.append(clock())
                await sleep(0.3)  # the reply's latency

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


def test_a_429_seen_by_one_worker_pauses_every_worker_until_its_retry_after():
    async def main() -> tuple[float, list[float]]:
        limiter = SharedLimiter(concurrency=20, clock=clock, sleep=sleep)
        first, other = leased(limiter, paced=False), leased(limiter, paced=False)
        sent: list[float] = []
        hit_at = 0.0

        async def body() -> None:
            nonlocal hit_at

            async def steady() -> None:
                while clock() < 5.0:
                    await other.before_send(0)
                    sent.append(clock())
                    await sleep(0.1)

            async with anyio.create_task_group() as group:
                group.start_soon(steady)
                await sleep(1.05)
                hit_at = clock()
                first.on_rate_limited(2.0, RunStats())

        await with_workers([first, other], body)
        return hit_at, sent

    hit_at, sent = run_virtual(main)
    assert [t for t in sent if hit_at < t < hit_at + 2.0] == []
    assert any(t >= hit_at + 2.0 for t in sent)  # and it goes on afterwards
    assert sum(t < hit_at for t in sent) >= 10


def test_repeated_429s_shrink_every_workers_concurrency_and_calm_grows_it_back():
    async def main() -> tuple[int, int, int]:
        limiter = SharedLimiter(concurrency=40, clock=clock, sleep=sleep)
        first, other = leased(limiter, paced=False), leased(limiter, paced=False)
        sizes: list[int] = []

        async def body() -> None:
            stats = RunStats()
            await other.before_send(0)
            sizes.append(int(other.capacity.total_tokens))
            for _ in range(3):  # three episodes, each after the last one's pause ended
                first.on_rate_limited(0.1, stats)
                await sleep(0.5)
            sizes.append(int(other.capacity.total_tokens))
            for _ in range(50 * 10):
                first.on_success(stats)
            await sleep(0.5)
            sizes.append(int(other.capacity.total_tokens))

        await with_workers([first, other], body)
        return sizes[0], sizes[1], sizes[2]

    before, shrunk, recovered = run_virtual(main)
    assert (before, recovered) == (10, 10)
    assert shrunk < before


def test_unused_send_times_and_tokens_are_given_back():
    async def main() -> tuple[float, float, float, float]:
        limiter = SharedLimiter(concurrency=8, rps=10, tpm=6000, clock=clock, sleep=sleep)
        assert limiter.limits.pacer is not None and limiter.limits.bucket is not None
        worker = leased(limiter, tpm=6000)
        await worker._lease(slots=8, tokens=800)  # what a lease for eight senders in line gets
        await worker.before_send(100)  # one of them sends
        level_leased = limiter.limits.bucket.level
        booked = len(limiter.limits.pacer._sent)
        await worker.aclose()
        return level_leased, limiter.limits.bucket.level, booked, len(limiter.limits.pacer._sent)

    level_leased, level_after, booked, after = run_virtual(main)
    assert level_leased == pytest.approx(800) and level_after == pytest.approx(100)
    assert booked == 8 and after == 1  # the one send made stays; seven times come back


def test_a_token_limit_is_shared_by_the_workers_not_multiplied():
    async def main() -> float:
        limiter = SharedLimiter(concurrency=8, tpm=6000, clock=clock, sleep=sleep)  # 100 tokens/s
        workers = [leased(limiter, paced=False, tpm=6000) for _ in range(2)]

        async def body() -> None:
            async def sender(limits: LeasedLimits) -> None:
                for _ in range(40):
                    await limits.before_send(500)
                    limits.settle(500, JudgeReply("", prompt_tokens=490, completion_tokens=10))

            async with anyio.create_task_group() as group:
                for worker in workers:
                    group.start_soon(sender, worker)

        await with_workers(workers, body)
        return clock()

    took = run_virtual(main)
    assert 340 <= took <= 360  # 40,000 tokens, 6,000 at once, then 100 a second


def test_the_online_judge_runs_unchanged_in_a_worker_and_gives_the_single_process_results(write_pairs, tmp_path):
    import batchjudge
    import polars as pl

    data = write_pairs(60)
    config = RunConfig(inputs=[data], out=tmp_path / "run", provider="local", rps=50, concurrency=8)
    single = pl.read_parquet(batchjudge.run(config).run_dir + "/results/*.parquet").sort("row_id")
    rows = [row for batch in open_source([data]).batches() for row in batch]

    async def main() -> list[RowResult]:
        limiter = SharedLimiter(concurrency=8, rps=50, clock=clock, sleep=sleep)
        worker = JudgeWorker(config, [limiter], workers=2, keyed=True, clock=clock, sleep=sleep)
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run_limits)
            results = await worker.judge_rows(rows)
            group.cancel_scope.cancel()
        return results

    table = pl.DataFrame([dataclasses.asdict(r) for r in run_virtual(main)]).sort("row_id")
    same = [c for c in single.columns if c != "latency_ms"]
    assert table.select(same).equals(single.select(same))


def test_rows_go_to_the_endpoint_with_the_least_in_flight(emulator, tmp_path: Path, write_pairs):
    fast, slow = emulator(latency_ms=10), emulator(latency_ms=400)
    data = write_pairs(120)
    config = RunConfig(inputs=[data], out=tmp_path / "unused", provider="mistral", base_url=[fast.url, slow.url],
                       api_key="test-key-not-secret", concurrency=8, engine="ray")
    rows = [row for batch in open_source([data]).batches() for row in batch]

    async def main() -> list[str]:
        limiters = [SharedLimiter(concurrency=8), SharedLimiter(concurrency=8)]
        worker = JudgeWorker(config, limiters, workers=1, keyed=True)
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run_limits)
            results = await worker.judge_rows(rows)
            group.cancel_scope.cancel()
        await worker.aclose()
        return [r.status for r in results]

    statuses = anyio.run(main)
    assert statuses == ["ok"] * 120
    fast_n, slow_n = fast.stats()["chat_completions"], slow.stats()["chat_completions"]
    assert fast_n + slow_n == 120
    assert slow_n >= 1 and fast_n > 3 * slow_n
