"""``batchjudge status RUN_DIR``: done of total, failures, last write, whether a run is writing
(without disturbing it), and the command that resumes it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from emulator_fixtures import cli_command
from report_helpers import result_row, write_run
from typer.testing import CliRunner

from batchjudge import run_status
from batchjudge.cli import app
from batchjudge.engine.checkpoint import RunDir, lock_holder

runner = CliRunner()


def _status(path: Path) -> str:
    result = runner.invoke(app, ["status", str(path)], terminal_width=400)
    assert result.exit_code == 0, result.output
    return result.output


def _wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_status_follows_a_run_while_it_runs_after_a_kill_and_once_finished(
    write_pairs: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_pairs(300)
    argv = ["run", "pairs.parquet", "--out", "runs/slow", "--rps", "40", "--concurrency", "2",
            "--flush-seconds", "0.2", "--quiet"]  # fmt: skip
    env = {**os.environ, "WEAVE_DISABLED": "true"}
    proc = subprocess.Popen([*cli_command(), *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: run_status("runs/slow").done >= 20 if Path("runs/slow/run.json").exists() else False)
        running = _status(Path("runs/slow"))
        assert f"runs/slow: running (pid {proc.pid})" in running and "of 300 rows have results" in running
        assert "started as: batchjudge run pairs.parquet --out runs/slow --concurrency 2 --rps 40 --flush-seconds 0.2" in running
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    stopped = _status(Path("runs/slow"))
    assert "runs/slow: stopped before the end" in stopped and "last write " in stopped
    resume = next(line for line in stopped.splitlines() if line.strip().startswith("resume: "))
    command = shlex.split(resume.split("resume: ", 1)[1])
    assert command[:2] == ["batchjudge", "run"] and "--rps" in command and "--quiet" not in command
    finished = runner.invoke(app, command[1:], terminal_width=400)
    assert finished.exit_code == 0, finished.output
    done = _status(Path("runs/slow"))
    assert "runs/slow: complete — 300 of 300 rows have results (100.0%)" in done and "resume" not in done


def test_status_from_another_folder_says_where_to_resume_and_suggests_retrying_failed_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = {"fingerprint": {}, "config": {"provider": "mistral", "model": "m", "mode": "online"},
            "counts": {"done": 10, "total": 10, "ok": 7, "parse_error": 0, "failed": 3},
            "endpoint": {"host": "api.mistral.ai", "emulator": False}, "sessions": 2,
            "command": ["batchjudge", "run", "data/x.parquet", "--out", "runs/r"], "cwd": "/somewhere else"}  # fmt: skip
    rows = [result_row(f"r{i}", 1, 1 if i < 7 else None) for i in range(10)]
    run_dir = write_run(tmp_path / "run", [rows[:5], rows[5:]], meta)
    monkeypatch.chdir(tmp_path)
    shown = _status(run_dir)
    assert "complete — 10 of 10" in shown and "failed 3" in shown and "endpoint api.mistral.ai" in shown
    assert "re-send the failed rows: cd '/somewhere else' && batchjudge run data/x.parquet --out runs/r --retry-failed" in shown
    as_json = json.loads(runner.invoke(app, ["status", str(run_dir), "--json"]).output)
    assert as_json["state"] == "complete" and as_json["pid"] is None and as_json["failed"] == 3


def test_the_lock_check_sees_the_writer_and_never_takes_the_lock(tmp_path: Path) -> None:
    assert lock_holder(tmp_path) is None
    with RunDir(tmp_path / "run"):
        assert lock_holder(tmp_path / "run") == os.getpid()
        assert lock_holder(tmp_path / "run") == os.getpid()  # looking twice changes nothing
    assert lock_holder(tmp_path / "run") is None
    with RunDir(tmp_path / "run"):  # and a run can still take it after a look
        pass


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "not a batchjudge run directory (no run.json)"),
])  # fmt: skip
def test_status_of_something_that_is_not_a_run_is_one_line(
    tmp_path: Path, make: Callable[[Path], None], message: str
) -> None:
    make(tmp_path / "x")
    result = runner.invoke(app, ["status", str(tmp_path / "x")], terminal_width=400)
    assert result.exit_code == 2 and result.output.startswith("error:") and message in result.output


def test_a_run_json_from_before_commands_were_stored_gets_one_rebuilt_from_its_config(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    data = write_pairs(6)
    out = tmp_path / "run"
    done = runner.invoke(app, ["run", str(data), "--out", str(out), "--limit", "6", "--quiet"], terminal_width=400)
    assert done.exit_code == 0, done.output
    meta = json.loads((out / "run.json").read_text())
    del meta["command"], meta["cwd"]
    meta["counts"]["total"] = 10  # as if interrupted
    (out / "run.json").write_text(json.dumps(meta))
    resume = _status(out).splitlines()[-1]
    assert resume == f"  resume: batchjudge run {data} --out {out} --model local-judge --limit 6"
