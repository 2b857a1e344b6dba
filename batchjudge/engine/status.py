"""How a run directory stands, seen from outside: ``batchjudge status RUN_DIR``.

Read without disturbing a run that may be writing. Whether a run is writing comes from the
lock (:func:`~batchjudge.engine.checkpoint.lock_holder`: a shared lock tried and released at
once, never the run's exclusive one). While one is, the counts are ``run.json``'s (rewritten
after every results part, so at most one flush behind; the run checked its parts when it
began and is the only writer). Otherwise the parts are checked as ``run`` and ``report``
check them (:meth:`~batchjudge.engine.checkpoint.RunDir.done_keys`: each part this run's and
whole, no row twice) and counted: a directory they refuse is refused here too, and a run is
``complete`` only when the parts that check out cover its rows. The last write comes from the
newest file's modification time, and the command that resumes the run from ``run.json``.

A run that judged every row up to ``--limit`` while its inputs hold more is ``limited``, not
``complete``: the command that goes on is the stored one without ``--limit``
(:func:`without_limit`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from batchjudge.core.results import STATUSES
from batchjudge.engine.batch import jobs_pending
from batchjudge.engine.checkpoint import RunDir
from batchjudge.engine.objrundir import ObjectRunDir, lease_holder, run_dir_at
from batchjudge.engine.stores import is_url, split_url
from batchjudge.engine.config import PROVIDERS, RunConfig
from batchjudge.engine.input_kinds import MEMORY_NAME
from batchjudge.errors import CheckpointError, InputError

__all__ = ["RunState", "RunStatus", "python_command", "read_status", "without_limit"]

RunState = Literal["running", "complete", "limited", "stopped"]


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A run directory at one moment."""

    path: str
    state: RunState
    """``running`` (a process holds the lock), ``complete`` (every row has a result),
    ``limited`` (every row up to ``--limit`` has one, the inputs hold more: the command
    without ``--limit`` goes on) or ``stopped`` (interrupted: the resume command finishes it)."""
    pid: int | None
    """The running process (0 when it did not say), else None."""
    done: int
    total: int
    """Rows the run covers (up to ``--limit``)."""
    input_rows: int | None
    """Rows of the inputs, whatever ``--limit`` (None: a run.json from before it was recorded)."""
    limit: int | None
    ok: int
    parse_error: int
    failed: int
    last_write: float | None
    """When results or ``run.json`` were last written (seconds since the epoch)."""
    provider: str | None
    model: str | None
    endpoint: str | None
    emulator: bool
    mode: str
    sessions: int
    batch_jobs_pending: int
    command: list[str] | None
    """The ``batchjudge run`` command that resumes the run (None: started from Python with a
    provider object)."""
    cwd: str | None
    """The folder ``command`` was run from."""
    from_memory: bool
    """The inputs were a table in memory (``<dataframe>``): no command names them."""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _command(meta: dict[str, Any], config: dict[str, Any]) -> list[str] | None:
    """The stored command; for a ``run.json`` written before commands were stored, the one its
    stored config implies (None when a provider object, which no command names, ran it)."""
    if "command" in meta:
        command = meta["command"]
        return [str(a) for a in command] if isinstance(command, list) else None
    known = {f.name for f in fields(RunConfig)}
    try:
        return RunConfig(**{k: v for k, v in config.items() if k in known}).command_line() \
            if config.get("provider") in PROVIDERS else None  # fmt: skip
    except TypeError:  # inputs or out missing: nothing to rebuild
        return None


def _checked_counts(run_dir: RunDir, stored: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """The counts of the parts that check out, and no pid; or, when a run began while they
    were read (its parts changed under the look), ``run.json``'s counts and its pid."""
    try:
        _, by_status = run_dir.done_keys()
    except CheckpointError:
        pid = lease_holder(run_dir)
        if pid is None:
            raise
        return stored, pid
    counts: dict[str, int] = {status: by_status.get(status, 0) for status in STATUSES}
    return {**stored, **counts, "done": sum(by_status.values())}, None


def without_limit(command: list[str]) -> list[str]:
    """``command`` without its ``--limit N`` (or ``--limit=N``): the command that goes on."""
    kept: list[str] = []
    skip = False
    for arg in command:
        if skip:
            skip = False
        elif arg == "--limit":
            skip = True
        elif not arg.startswith("--limit="):
            kept.append(arg)
    return kept


def python_command(out: str, *, go_on: bool) -> str:
    """How a run made from a table in memory resumes (``go_on``: goes on past ``--limit``)
    from Python, where the table is: no command line can name it."""
    limit = ", limit=None" if go_on else ""
    return f"batchjudge.run(RunConfig(inputs=<the same table>, out={out!r}{limit}, <the same options>))"


def _limited(done: int, total: int, limit: int | None, input_rows: int | None) -> bool:
    """Every row up to ``--limit`` has a result and the inputs hold more (or may: a run.json
    written before ``input_rows`` was recorded, whose rows reached the limit)."""
    if limit is None or not total or done < total:
        return False
    return input_rows > total if input_rows is not None else total >= limit


def read_status(path: str | os.PathLike[str]) -> RunStatus:
    """The status of the run in ``path``; InputError when it is not a run directory,
    CheckpointError when its parts do not check out (what ``run`` and ``report`` refuse)."""
    if is_url(path) and split_url(os.fspath(path))[0] != "file":
        return _status_stored(os.fspath(path))
    folder = Path(split_url(os.fspath(path))[2] if is_url(path) else path)
    if not folder.is_dir():
        raise InputError(f"{folder}: {'not a directory' if folder.exists() else 'does not exist'} "
                         "(expected a run directory)")
    run_dir = RunDir(folder)  # never opened: no lock taken, nothing written
    meta = run_dir.read_meta()
    if meta is None:
        raise InputError(f"{folder}: not a batchjudge run directory (no run.json)")
    written = [folder / "run.json", *(p for p in run_dir.parts()[-1:] if isinstance(p, Path))]
    last_write = max((f.stat().st_mtime for f in written if f.exists()), default=None)
    return _status(run_dir, meta, last_write, jobs_pending(folder))


def _status_stored(url: str) -> RunStatus:
    """:func:`read_status` of a run directory in object storage."""
    run_dir = run_dir_at(url)  # never opened: no lease taken, nothing written
    meta = run_dir.read_meta()
    if meta is None:
        raise InputError(f"{run_dir.path}: not a batchjudge run directory (no run.json)")
    assert isinstance(run_dir, ObjectRunDir)
    return _status(run_dir, meta, run_dir.last_write(), 0)


def _status(run_dir: RunDir, meta: dict[str, Any], last_write: float | None, pending: int) -> RunStatus:
    counts, config, endpoint = (_dict(meta.get(k)) for k in ("counts", "config", "endpoint"))
    pid = lease_holder(run_dir)
    if pid is None:
        counts, pid = _checked_counts(run_dir, counts)
    done, total = _int(counts.get("done")), _int(counts.get("total"))
    limit = _int(config.get("limit")) or None
    input_rows = meta.get("input_rows") if isinstance(meta.get("input_rows"), int) else None
    state: RunState = "running" if pid is not None else "limited" if _limited(done, total, limit, input_rows) \
        else "complete" if total and done >= total else "stopped"  # fmt: skip
    return RunStatus(
        path=os.fspath(run_dir.path), state=state, pid=pid, done=done, total=total, input_rows=input_rows,
        limit=limit,
        ok=_int(counts.get("ok")), parse_error=_int(counts.get("parse_error")), failed=_int(counts.get("failed")),
        last_write=last_write,
        provider=config.get("provider"), model=config.get("model"), endpoint=endpoint.get("host"),
        emulator=endpoint.get("emulator") is True, mode=str(config.get("mode") or "online"),
        sessions=_int(meta.get("sessions")), batch_jobs_pending=pending,
        command=_command(meta, config),
        cwd=meta.get("cwd") if isinstance(meta.get("cwd"), str) else None,
        from_memory=config.get("inputs") == [MEMORY_NAME],
    )
