"""What a run shows while it works: a live line that fits 80 columns on a terminal, a plain
greppable line every few seconds elsewhere, and money only where money is spent."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from emulator_fixtures import batchjudge_cli
from rich.cells import cell_len
from rich.console import Console

from batchjudge.cli._progress import Money, ProgressView, duration, fit_line, line_fields, plain_line
from batchjudge.engine.stats import RunStats
from batchjudge.report.prices import Price


def _stats(**counts: int) -> RunStats:
    stats = RunStats(total=1_000_000, done_before=400_000, ok=123_456, failed=1_234, retries=56_789,
                     rate_limited=4_321, reused=9_876, prompt_tokens=987_654_321, completion_tokens=12_345_679,
                     limits="95/s flag, 1,200/min server, 2,000,000 tok/min server")  # fmt: skip
    for name, value in counts.items():
        setattr(stats, name, value)
    return stats


PRICED = Money(Price(0.1, 0.3))


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_the_live_line_fits_the_width_and_never_cuts_done_of_total(width: int) -> None:
    stats = _stats()
    line = fit_line(line_fields(stats, PRICED), width, stats.completed / stats.total).plain
    assert cell_len(line) <= width
    assert f"{stats.completed:,}/1,000,000" in line


def test_at_80_columns_the_important_fields_stay_and_the_least_go_first() -> None:
    line = fit_line(line_fields(_stats(), PRICED), 80).plain
    assert "%" in line and "$" in line and "eta " in line and "failed 1,234" in line
    assert "judging" not in line and "tok " not in line  # dropped first
    wide = fit_line(line_fields(_stats(), PRICED), 200, 0.5).plain
    assert wide.startswith("judging ━") and wide.endswith("tok 1.0G") and "95/s flag" in wide


def test_a_terminal_gets_one_live_line_no_wider_than_the_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    view = ProgressView(console, PRICED)
    for done in (0, 500, 1_000_000):
        view(_stats(done_before=done, ok=0, failed=0))
    view.stop()
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in out.getvalue().replace("\r", "\n").splitlines()]
    shown = [line for line in lines if line.strip()]
    assert shown and all(cell_len(line) <= 80 for line in shown)
    assert "1,000,000/1,000,000 100.0%" in shown[-1]


def test_elsewhere_a_plain_line_is_printed_every_interval_and_greppable() -> None:
    out = io.StringIO()
    now = [0.0]
    view = ProgressView(Console(file=out, width=80), PRICED, every=10.0, clock=lambda: now[0])
    stats = _stats()
    for t in (0.0, 4.0, 9.9, 10.0, 15.0, 20.5):
        now[0] = t
        view(stats)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # at 0, 10 and 20.5 s
    assert lines[0].startswith("progress 524690/1000000 52.5% rate=")
    assert " failed=1234 " in lines[0] and " 429s=4321 " in lines[0] and " cost=$102.47 " in lines[0]
    assert lines[0].endswith(' limits="95/s flag, 1,200/min server, 2,000,000 tok/min server"')
    assert "server_stalls" not in lines[0]  # shown once there is one
    stats.server_stalls = 3
    assert plain_line(stats, PRICED).endswith(" server_stalls=3")


def test_money_is_the_session_tokens_at_the_price_half_in_batch_none_for_the_emulator_or_local() -> None:
    stats = RunStats(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert PRICED.of(stats) == "$0.4000"
    assert Money(Price(0.1, 0.3), batch=True).of(stats) == "$0.2000"
    assert Money(Price(0.1, 0.3), not_billed="local judge").of(stats) is None
    assert Money(None).of(stats) is None
    stats.emulator = True
    assert PRICED.of(stats) == "emulator"
    assert "emulator" in plain_line(stats, PRICED)


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (59.4, "59s"), (61, "1m01s"), (3600 * 5 + 60 * 7, "5h07m"),
                                                 (86400 * 3 + 3600, "3d01h")])  # fmt: skip
def test_durations_take_at_most_two_units(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_a_run_whose_stderr_is_a_log_file_prints_progress_lines_while_it_works(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    """nohup or CI: stderr is not a terminal, so no live bar — plain lines instead."""
    done = batchjudge_cli("run", str(write_pairs(300)), "--out", str(tmp_path / "run"), "--concurrency", "1",
                          "--rps", "150", "--progress-every", "0.5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("progress ")]
    assert len(progress) >= 2 and progress[0].startswith("progress 0/300 0.0%")
    assert "\x1b[" not in done.stderr and "━" not in done.stderr
