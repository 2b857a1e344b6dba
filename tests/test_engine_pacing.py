"""The request pacer never lets more than the limit through in any window, and loses no time."""

from __future__ import annotations

import anyio
import pytest

from batchjudge.engine.pacing import WindowPacer


class FakeClock:
    """A clock that only moves when someone sleeps: tests run in microseconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


def sends(rate: float, n: int, *, margin: float = 0.03) -> list[float]:
    clock = FakeClock()
    pacer = WindowPacer(rate, margin=margin, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def main() -> None:
        for _ in range(n):
            await pacer.acquire()
            times.append(clock.now)

    anyio.run(main)
    return times


@pytest.mark.parametrize("rate", [1, 7, 100, 400])
def test_no_window_of_the_widened_second_holds_more_than_the_limit(rate):
    times = sends(rate, rate * 5)
    window = 1.03
    for i, t in enumerate(times):
        in_window = [u for u in times[i:] if u < t + window]
        assert len(in_window) <= rate


def test_the_pacer_reaches_the_limit_less_the_margin():
    times = sends(100, 1000)
    rate = (len(times) - 100) / times[-1]  # the first window's burst is free
    assert rate == pytest.approx(100 / 1.03, rel=0.01)


def test_a_rate_below_one_per_second_spaces_single_sends():
    assert sends(0.5, 3, margin=0.0) == [0.0, 2.0, 4.0]


def test_a_gate_is_passed_before_the_send_is_recorded():
    clock = FakeClock()
    pacer = WindowPacer(2, margin=0.0, clock=clock, sleep=clock.sleep)

    async def cooldown() -> None:
        await clock.sleep(5.0)

    async def main() -> list[float]:
        await pacer.acquire(gate=cooldown)
        return list(pacer._sent)

    assert anyio.run(main) == [5.0]


def test_429s_widen_the_window_at_most_ten_percent_and_calm_narrows_it_back():
    pacer = WindowPacer(100, margin=0.0)
    for _ in range(50):
        pacer.slow_down()
    assert pacer.window == pytest.approx(1.10)
    for _ in range(1000):
        pacer.recover()
    assert pacer.window == pytest.approx(1.0)
