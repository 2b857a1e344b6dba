"""The pause the workers of one machine share: a 429 in one worker stops the others' next
sends at memory speed, not after a round trip through the limiter. Without Ray: the board is
a file, the workers run in one process (or two, for the cross-process test) on one clock."""

from __future__ import annotations

import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from test_ray_limits import sends_around_a_429
from virtual_time import clock, run_virtual, sleep

from batchjudge.ray import _board
from batchjudge.ray._board import CooldownBoard, board_path
from batchjudge.ray._leased import LeasedLimits
from batchjudge.ray._limiter import SharedLimiter


@pytest.fixture
def name() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex}"
    yield name
    CooldownBoard.remove(name)


def test_a_new_board_holds_no_pause_and_a_pause_is_never_shortened(name):
    one, two = CooldownBoard(name), CooldownBoard(name)
    assert one.until() == two.until() == 0.0
    one.extend(12.5)
    two.extend(10.0)  # an earlier end does not cut the pause short
    assert one.until() == two.until() == 12.5
    one.close()
    two.close()
    assert CooldownBoard(name).until() == 12.5  # the file outlives its openers until removed
    CooldownBoard.remove(name)
    assert not board_path(name).exists()


def test_a_machine_that_cannot_hold_a_board_gets_none_and_the_limiter_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(_board, "board_path", lambda name: tmp_path / "not-a-directory" / name)
    assert CooldownBoard.open("x") is None
    CooldownBoard.remove("x")  # and removing it at exit is no error


def test_a_pause_written_by_another_process_is_read_here(name):
    board = CooldownBoard(name)
    code = f"from batchjudge.ray._board import CooldownBoard; CooldownBoard({name!r}).extend(1234.5)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert board.until() == 1234.5


def test_a_board_left_half_written_by_a_killed_writer_reads_its_later_end(name):
    board = CooldownBoard(name)
    board.extend(5.0)
    with board.path.open("r+b") as raw:  # the writer died after the first copy of 9.0
        raw.write(struct.pack("<d", 9.0))
    assert board.until() == 9.0
    board.extend(7.0)  # no shorter...
    board.extend(11.0)  # ...and the next write heals it
    assert struct.unpack("<dd", board.path.read_bytes()) == (11.0, 11.0)


def test_a_429_in_one_worker_pauses_the_others_of_its_machine_before_the_limiter_hears_of_it(name):
    # Neither worker talks to the limiter in the background here (no reports, no long poll),
    # so only the board can carry the pause; the limiter keeps lending times through it.
    async def main() -> tuple[float, list[float]]:
        limiter = SharedLimiter(concurrency=20, rps=50, clock=clock, sleep=sleep)
        refused, other = (LeasedLimits(limiter, concurrency=10, expected_completion_tokens=10, clock=clock, sleep=sleep,
                                       board=CooldownBoard(name)) for _ in range(2))
        return await sends_around_a_429(refused, other, hit_after=1.02, retry_after=1.0, until=3.0, gap=0.05)

    hit_at, sent = run_virtual(main)
    assert [t for t in sent if hit_at < t < hit_at + 1.0] == []
    assert sum(t < hit_at for t in sent) >= 15 and any(t >= hit_at + 1.0 for t in sent)
