"""``batchjudge status RUN_DIR``: how a run stands, whether one is writing, how to resume it.

Reads ``run.json``, the lock and, when no run is writing, the parts, checked as ``run``
checks them (:func:`batchjudge.run_status`): safe while a run writes, and a fraction of a
second on a hundred thousand rows.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from batchjudge.cli._console import echo_json, fail, fail_with, out_console
from batchjudge.cli._options import STORAGE_OPTION, flag, use_storage_options
from batchjudge.errors import BatchJudgeError

__all__ = ["register"]


def _ago(when: float | None) -> str:
    if when is None:
        return "never"
    from batchjudge.cli._progress import duration

    stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{duration(time.time() - when)} ago ({stamp})"


def status_command(
    run_dir: Annotated[str, typer.Argument(help="A run directory written by `batchjudge run` (a path or an s3:// URL).")],
    as_json: Annotated[bool, flag("json", "Print one JSON object.")] = False,
    storage_option: Annotated[list[str] | None, STORAGE_OPTION] = None,
) -> None:
    """Done of total, failures, last write, whether a run is writing, and the command that resumes it."""
    from batchjudge.api import run_status
    from batchjudge.engine.status import python_command, without_limit

    try:
        use_storage_options(storage_option)
        status = run_status(run_dir)
    except BatchJudgeError as exc:
        raise fail_with(exc) from None
    if as_json:
        echo_json(asdict(status))
        return
    pct = f" ({100 * status.done / status.total:.1f}%)" if status.total else ""
    state = {"running": f"running (pid {status.pid})" if status.pid else "running",
             "complete": "complete", "stopped": "stopped before the end"}.get(status.state)  # fmt: skip
    served = f"{status.provider} via the emulator" if status.emulator else status.provider
    head = f"{status.path}: {state} — {status.done:,} of {status.total:,} rows have results{pct}"
    if status.state == "limited":
        head = f"{status.path}: stopped at --limit: " + (
            f"{status.done:,} of {status.input_rows:,} rows have results ({100 * status.done / status.input_rows:.1f}%)"
            if status.input_rows else f"{status.done:,} rows have results (the inputs may hold more)")
    lines = [
        head,
        f"  ok {status.ok:,} · parse_error {status.parse_error:,} · failed {status.failed:,}",
        f"  last write {_ago(status.last_write)}",
        f"  provider {served} · model {status.model}" + (f" · endpoint {status.endpoint}" if status.endpoint else "")
        + f" · mode {status.mode} · sessions {status.sessions}",
    ]  # fmt: skip
    if status.batch_jobs_pending:
        lines.append(f"  batch jobs not collected yet: {status.batch_jobs_pending}")
    command = status.command
    if command is None and status.from_memory and status.state in ("stopped", "limited"):
        verb = "go on" if status.state == "limited" else "resume"
        lines.append(f"  {verb} from Python: {python_command(status.path, go_on=status.state == 'limited')}")
    elif command is None:
        lines.append("  started from Python with a provider object: resume it the same way")
    else:
        there = status.cwd and os.path.abspath(status.cwd) != os.path.abspath(os.getcwd())
        shown = (f"cd {shlex.quote(status.cwd)} && " if there and status.cwd else "") + shlex.join(command)
        if status.state == "stopped":
            lines.append(f"  resume: {shown}")
        elif status.state == "limited":
            lines.append(f"  go on: {shown.removesuffix(shlex.join(command))}{shlex.join(without_limit(command))}")
        elif status.state == "running":
            lines.append(f"  started as: {shown}")
        elif status.failed:
            lines.append(f"  re-send the failed rows: {shown} --retry-failed")
    console = out_console()
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``status`` to the CLI."""
    app.command("status")(status_command)
