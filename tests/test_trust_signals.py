"""Stopping loses no paid work: SIGTERM and Ctrl-C stop sending, wait for the replies on the
wire, write every answered row and exit 143 / 130 with the resume hint; the library's ``stop``
event does the same, and a cancelled ``run_async`` still writes every row that reached it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import polars as pl
import pytest

from batchjudge import JudgeReply, JudgeRequest, MockProvider, RunConfig, RunStats, run_async
from emulator_fixtures import cli_command
from hostile_server import HostileServer, wait_for


def _rows_on_disk(out: Path) -> pl.DataFrame:
    parts = sorted((out / "results").glob("part-*.parquet"))
    return pl.concat([pl.read_parquet(p) for p in parts]) if parts else pl.DataFrame()


@pytest.mark.parametrize(("signum", "code"), [
    (signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow),
])
def test_a_signal_mid_run_writes_every_answered_row_and_the_resume_pays_for_none_twice(
    write_pairs, tmp_path: Path, signum: int, code: int
) -> None:
    data, out = write_pairs(240), tmp_path / "run"
    env = {**os.environ, "MISTRAL_API_KEY": "sk-test-signal-key", "WEAVE_DISABLED": "true"}
    command = [*cli_command(), "run", str(data), "--out", str(out), "--provider", "mistral",
               "--concurrency", "16", "--flush-rows", "10000", "--flush-seconds", "600", "--quiet"]
    with HostileServer(latency=0.2) as server:
        proc = subprocess.Popen([*command, "--base-url", server.url], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: server.answered >= 40, timeout=60)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        answered_before = server.answered
        assert proc.returncode == code, err
        name = signal.Signals(signum).name
        assert f"stopped by {name}: every reply received is written; run the same command again to resume" in err
        assert "Traceback" not in err
        written = _rows_on_disk(out)
        assert 40 <= written.height < 240
        assert written.height == answered_before  # every row the server answered is on disk
        assert written["status"].to_list() == ["ok"] * written.height
        again = subprocess.run([*command, "--base-url", server.url], env=env, capture_output=True,
                               text=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr
        assert server.answered == 240  # nothing answered before was paid for again
    assert _rows_on_disk(out)["row_id"].n_unique() == 240


def _slow_provider(answered: list[str]) -> MockProvider:
    async def answer(request: JudgeRequest) -> JudgeReply:
        await anyio.sleep(0.05)
        answered.append(request.row_id)
        return JudgeReply('{"consistency": 1}')

    return MockProvider(answer)


def test_the_stop_event_stops_sending_and_writes_every_reply(write_pairs, tmp_path: Path) -> None:
    answered: list[str] = []
    config = RunConfig(inputs=[write_pairs(500)], out=tmp_path / "run", concurrency=8,
                       flush_rows=10_000, flush_seconds=600)

    async def main() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as group:

            async def stop_soon() -> None:
                while len(answered) < 60:
                    await anyio.sleep(0.01)
                stop.set()

            group.start_soon(stop_soon)
            result = await run_async(config, provider=_slow_provider(answered), stop=stop)
        assert not result.complete and result.exit_code == 1
        assert result.counts["done"] == len(answered) < 500

    anyio.run(main)
    assert sorted(_rows_on_disk(tmp_path / "run")["row_id"].to_list()) == sorted(answered)


def test_a_cancelled_run_still_writes_every_row_that_reached_the_writer(write_pairs, tmp_path: Path) -> None:
    answered: list[str] = []
    seen: list[RunStats] = []
    config = RunConfig(inputs=[write_pairs(500)], out=tmp_path / "run", concurrency=8,
                       flush_rows=10_000, flush_seconds=600)

    async def main() -> None:
        with anyio.move_on_after(0.6):
            await run_async(config, provider=_slow_provider(answered), progress=seen.append,
                            progress_interval=0.05)

    anyio.run(main)
    reached = seen[-1].finished
    assert 0 < reached < 500
    assert _rows_on_disk(tmp_path / "run").height == reached


def test_a_progress_callback_that_raises_stops_the_run_with_its_own_error_and_keeps_every_answered_row(
    write_pairs, tmp_path: Path
) -> None:
    """A caller's callback is the caller's code: its error comes back as itself (not inside an
    exception group), every row answered before it is written, and the same run resumes."""
    config = RunConfig(inputs=[write_pairs(500)], out=tmp_path / "run", concurrency=8)
    answered: list[str] = []

    def stop_at_100(stats: RunStats) -> None:
        if stats.finished >= 100:
            raise ValueError("enough for now")

    async def main() -> None:
        await run_async(config, provider=_slow_provider(answered), progress=stop_at_100, progress_interval=0.01)

    with pytest.raises(ValueError, match="enough for now"):
        anyio.run(main)
    written = _rows_on_disk(tmp_path / "run")
    assert 100 <= written.height < 500
    assert written["row_id"].n_unique() == written.height

    async def resume() -> None:
        await run_async(config, provider=_slow_provider(answered))

    anyio.run(resume)
    assert _rows_on_disk(tmp_path / "run")["row_id"].n_unique() == 500 == _rows_on_disk(tmp_path / "run").height
