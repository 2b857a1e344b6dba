"""A server's stalls, read from the gaps between its replies: the sends a stall held back count
from its end, so the sends paced a window after them do not reach the server early."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from virtual_time import clock, run_virtual, sleep

from batchjudge.core.types import JudgeRequest
from batchjudge.engine.limits import Limits
from batchjudge.engine.stalls import StallWatch
from emulator_fixtures import TEST_KEY, StartEmulator, batchjudge_cli, emulator  # noqa: F401 - a fixture


@dataclass
class Sent:
    sent_at: float


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def steady(watch: StallWatch[Sent], now: Clock, rate: float, seconds: float) -> None:
    """Replies at ``rate`` a second for ``seconds``, from ``now`` on."""
    for _ in range(round(rate * seconds)):
        now.now += 1.0 / rate
        assert watch.replied() == []


def test_a_gap_of_six_reply_intervals_with_sends_in_it_ends_a_stall() -> None:
    now = Clock()
    watch = StallWatch[Sent](now, floor=0.010)
    steady(watch, now, 100, 2.0)  # replies every 10 ms: no gap stands out
    before, during, late = Sent(now.now - 0.005), Sent(now.now + 0.020), Sent(now.now + 0.050)
    for request in (before, during, late):
        watch.sent(request)
    now.now += 0.070  # 7 intervals without a reply, while two requests left
    assert watch.replied() == [during, late]  # not the one sent well before the last reply


def test_a_shorter_gap_or_one_without_sends_is_chance() -> None:
    now = Clock()
    watch = StallWatch[Sent](now, floor=0.010)
    steady(watch, now, 100, 2.0)
    watch.sent(Sent(now.now + 0.010))
    now.now += 0.055  # under six intervals at 100 a second
    assert watch.replied() == []
    steady(watch, now, 100, 1.0)
    now.now += 0.5  # a long gap, but nothing was sent in it
    assert watch.replied() == []


def test_the_bar_follows_the_reply_rate_down_to_the_pacers_margin() -> None:
    now = Clock()
    watch = StallWatch[Sent](now, floor=0.010)
    steady(watch, now, 375, 2.0)  # six intervals: 16 ms
    watch.sent(Sent(now.now + 0.001))
    now.now += 0.014
    assert watch.replied() == []
    watch.sent(Sent(now.now + 0.001))
    now.now += 0.017
    assert len(watch.replied()) == 1
    steady(watch, now, 2000, 2.0)  # six intervals: 3 ms, under the margin
    held = Sent(now.now + 0.001)
    watch.sent(held)
    now.now += 0.008
    assert watch.replied() == []
    watch.done(held)  # answered: no longer in flight
    now.now += 0.020
    assert watch.replied() == []


def request() -> JudgeRequest:
    return JudgeRequest("r", [{"role": "user", "content": "x"}], "p", "h", "m", prompt_tokens=100)


def test_the_sends_a_stall_held_back_make_the_next_window_wait_for_its_end() -> None:
    async def main() -> tuple[list[float], list[float], int]:
        limits = Limits(concurrency=64, rps=20, second_margin=0.0, clock=clock, sleep=sleep)
        for _ in range(20):  # a second of sends, each answered at once: 20 replies a second
            reservation = limits.charge(request())
            await limits.before_send(reservation)
            limits.answered()
            limits.after_send(reservation)
        held = []
        for _ in range(8):  # the server stalls: sends go on, no reply comes
            reservation = limits.charge(request())
            await limits.before_send(reservation)
            held.append(reservation)
        await sleep(1.4 - clock())
        limits.answered()  # the first reply after 0.545 s, more than six intervals (0.3 s)
        later = []
        for _ in range(20):
            reservation = limits.charge(request())
            await limits.before_send(reservation)
            later.append(round(reservation.sent_at, 3))
        return [round(r.sent_at, 3) for r in held], later, limits.stats.server_stalls

    held, later, stalls = run_virtual(main)
    assert stalls == 1  # the run counts it (the CLI's summary and log line show it)
    # sent from 1.0 s to 1.315 s, reached the server (by its count) when it resumed at 1.4 s
    assert held == [1.4] * 8
    # the sends a window after the first 20 go as paced (0.045 s after the last counted send);
    # those a window after the held ones wait for 2.4 s (2.0-2.315 s counted from their sends)
    assert later[:12] == [round(1.445 + 0.045 * i, 3) for i in range(12)]
    assert later[12:] == [round(2.4 + 0.045 * i, 3) for i in range(8)]


def test_a_cli_run_against_a_stalling_server_paces_around_its_stalls_and_says_how_many(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path  # noqa: F811
) -> None:
    # The real emulator over HTTP, its loop stopping 200 ms at one request in 50: the gaps show
    # in the replies, the run finishes every row, and its summary counts the stalls it saw.
    server = emulator(rps=100, latency_ms=50, faults="stall=200:0.02", seed=3)
    done = batchjudge_cli("run", str(write_pairs(400)), "--out", str(tmp_path / "run"), "--provider", "mistral",
                          "--base-url", server.url, "--rps", "100", env={"MISTRAL_API_KEY": TEST_KEY})
    assert done.returncode == 0, done.stderr
    stalled = server.stats()["faults"]["stall=200"]
    seen = re.search(r"(\d+) server stalls paced around", done.stderr)
    assert seen is not None, done.stderr
    assert 1 <= int(seen.group(1)) <= stalled, (seen.group(0), stalled)
