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


def sends(rate: float, n: int, *, margin: float = 0.01, spread: float = 0.9) -> list[float]:
    clock = FakeClock()
    limit, window = WindowPacer.shape(rate)
    pacer = WindowPacer(limit, window, margin=margin, spread=spread, clock=clock, sleep=clock.sleep)
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
    window = 1.01
    for i, t in enumerate(times):
        in_window = [u for u in times[i:] if u < t + window - 1e-9]
        assert len(in_window) <= rate


@pytest.mark.parametrize("rate", [5, 100, 400])
def test_the_pacer_reaches_the_limit_less_a_fixed_10_ms_margin(rate):
    times = sends(rate, rate * 10)
    for i in range(rate, rate * 9, rate):  # every window after the first holds exactly the limit
        assert rate / (times[i + rate] - times[i]) == pytest.approx(rate / 1.01, rel=0.001)


@pytest.mark.parametrize("rate", [20, 400])
def test_a_window_is_not_sent_in_one_burst_but_near_the_average_rate(rate):
    times = sends(rate, rate * 3)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) == pytest.approx(0.9 / rate)
    twice = sends(rate, rate * 3, spread=0.5)
    assert min(b - a for a, b in zip(twice, twice[1:], strict=False)) == pytest.approx(0.5 / rate)
    assert sends(rate, rate, spread=0.0) == [0.0] * rate  # spread 0: the old burst


def test_a_rate_below_one_per_second_spaces_single_sends():
    assert sends(0.5, 3, margin=0.0) == [0.0, 2.0, 4.0]


def test_a_gate_is_passed_before_the_send_is_recorded():
    clock = FakeClock()
    pacer = WindowPacer(2, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)

    async def cooldown() -> None:
        await clock.sleep(5.0)

    async def main() -> list[float]:
        await pacer.acquire(gate=cooldown)
        return list(pacer._sent)

    assert anyio.run(main) == [5.0]


def test_a_new_limit_applies_at_once_and_the_recent_sends_still_count():
    clock = FakeClock()
    pacer = WindowPacer(10, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)

    async def main() -> list[float]:
        times = []
        for _ in range(10):
            times.append(await pacer.acquire())
        pacer.configure(5)  # the last 5 of the 10 sends at t=0 still fill the new window
        for _ in range(6):
            times.append(await pacer.acquire())
        return times

    assert anyio.run(main) == [0.0] * 10 + [1.0] * 5 + [2.0]


def test_sends_by_others_on_the_same_quota_take_room_in_the_window():
    clock = FakeClock()
    pacer = WindowPacer(4, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)

    async def main() -> list[float]:
        pacer.add_foreign(3)
        return [await pacer.acquire() for _ in range(3)]

    assert anyio.run(main) == [0.0, 1.0, 1.0]
    assert pacer.count_between(0.5, 1.5) == 2


def test_a_send_moved_to_when_it_really_left_holds_back_the_send_a_window_after_it():
    clock = FakeClock()
    pacer = WindowPacer(2, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)

    async def main() -> list[float]:
        first = await pacer.acquire()
        await pacer.acquire()
        pacer.move(first + 0.0004, 0.3)  # found to within a millisecond: it left at 0.3 s
        return [await pacer.acquire() for _ in range(2)]

    assert anyio.run(main) == [1.0, 1.3]


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(len([u for u in times[i:] if u < t + window - 1e-9]) for i, t in enumerate(times))


def test_booked_sends_are_the_times_acquire_would_give():
    clock = FakeClock()
    pacer = WindowPacer(10, margin=0.01, clock=clock, sleep=clock.sleep)
    assert pacer.reserve(25) == sends(10, 25)


def test_booked_sends_never_put_more_than_the_limit_in_a_widened_window_nor_come_closer_than_the_spread():
    clock = FakeClock()
    pacer = WindowPacer(10, margin=0.01, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    for _ in range(12):  # several borrowers booking ahead, while time moves on
        times += pacer.reserve(7, until=clock.now + 0.5)
        clock.now += 0.3
    assert times == sorted(times) and len(times) > 30
    assert most_in_any_window(times, 1.01) <= 10
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) == pytest.approx(0.09)


def test_a_booking_stops_at_its_horizon_but_always_gets_one_send():
    clock = FakeClock()
    pacer = WindowPacer(10, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)
    assert pacer.reserve(10, until=0.0) == [0.0] * 10  # the first window is free at once
    assert pacer.reserve(5, until=0.5) == [1.0]  # past the horizon: only the first
    assert pacer.reserve(3, not_before=2.5) == [2.5, 2.5, 2.5]
    assert pacer.earliest() == 2.5 and pacer.earliest(7.0) == 7.0


def test_released_bookings_can_be_booked_again():
    clock = FakeClock()
    pacer = WindowPacer(4, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)
    booked = pacer.reserve(4)
    assert pacer.reserve(1) == [1.0]
    pacer.release(booked[2:] + [1.0])  # two of the first window and the later one, unused
    assert pacer.reserve(3) == [0.0, 0.0, 1.0]


def test_a_released_booking_frees_its_place_but_the_sends_before_it_still_count():
    clock = FakeClock()
    pacer = WindowPacer(2, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)
    booked = pacer.reserve(1) + pacer.reserve(1, not_before=0.9) + pacer.reserve(1) + pacer.reserve(1)
    assert booked == [0.0, 0.9, 1.0, 1.9]
    pacer.release([1.9])
    # its place comes back, not the one before it: 0.9 and 1.0 still fill the window to 1.9
    assert pacer.reserve(1) == [1.9]
    assert most_in_any_window([0.0, 0.9, 1.0, 1.9], 1.0) <= 2


def test_senders_ahead_go_before_the_others_waiting_and_each_class_keeps_its_order():
    """A retry waits behind the retries before it, never behind first attempts not yet sent."""
    clock = FakeClock()
    pacer = WindowPacer(100, 1.0, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)
    order: list[str] = []

    async def main() -> None:
        gate_open = anyio.Event()

        async def send(name: str, ahead: bool = False) -> None:
            await pacer.acquire(gate=gate_open.wait if name == "holder" else None, ahead=ahead)
            order.append(name)

        async with anyio.create_task_group() as tg:
            for name in ("holder", "a1", "a2", "r1", "a3", "r2"):
                tg.start_soon(send, name, name.startswith("r"))
                await anyio.lowlevel.checkpoint()
            gate_open.set()

    anyio.run(main)
    assert order == ["holder", "r1", "r2", "a1", "a2", "a3"]


@pytest.mark.parametrize("handed", [False, True], ids=["cancelled in line", "cancelled once handed the line"])
def test_a_sender_cancelled_in_line_never_blocks_the_senders_after_it(handed: bool) -> None:
    clock = FakeClock()
    pacer = WindowPacer(100, 1.0, margin=0.0, spread=0.0, clock=clock, sleep=clock.sleep)
    sent: list[str] = []

    async def main() -> None:
        gate_open = anyio.Event()
        scope = anyio.CancelScope()

        async def gate() -> None:
            await gate_open.wait()
            if handed:
                scope.cancel()  # and the holder hands the line on before the cancelled one wakes

        async def holder() -> None:
            await pacer.acquire(gate=gate)
            sent.append("holder")

        async def cancelled() -> None:
            with scope:
                await pacer.acquire(gate=anyio.lowlevel.checkpoint, ahead=True)
                sent.append("cancelled")

        async def after() -> None:
            await pacer.acquire()
            sent.append("after")

        with anyio.fail_after(10):  # a line left held would hang here
            async with anyio.create_task_group() as tg:
                for sender in (holder, cancelled, after):
                    tg.start_soon(sender)
                    await anyio.lowlevel.checkpoint()
                if not handed:
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()
                gate_open.set()

    anyio.run(main)
    assert sent == ["holder", "after"]
