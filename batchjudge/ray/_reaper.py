"""When the driver dies, the Ray it started on this machine dies with it, and its boards go.

A ``kill -9`` of the driver runs no ``atexit`` and no ``ray.shutdown``: the Ray it started here
(GCS, raylet, the dashboard and runtime-env agents, the judging workers) was seen to outlive it
by minutes, and its cooldown boards stayed in ``/dev/shm``. So before it starts Ray the driver
starts this watcher (:class:`Reaper`), a separate process in its own session, joined to the
driver by a pipe only the driver writes to. Twice a second the watcher notes the driver's
descendants whose command line names Ray (read from ``/proc``: Linux). When the pipe reaches
end-of-file without the driver having said goodbye (:meth:`Reaper.close`), the driver is gone,
however it died: the watcher kills every process it noted that is still the same process (pid
and start time), with its descendants, and removes the boards the driver named. Without
``/proc`` only the boards are removed.

This file runs as a script (``python -I _reaper.py PID``): it imports the standard library
alone, so the watcher starts in a few tens of milliseconds and holds no Ray.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

__all__ = ["Reaper", "WATCH_SECONDS"]

WATCH_SECONDS = 0.5
"""How often the watcher notes the driver's descendants (a process Ray starts and that dies
within this long can be missed; one that lives longer cannot)."""


class Reaper:
    """The driver's side: start the watcher, name the boards to remove, say goodbye."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)  # its own session: a Ctrl-C meant for the driver spares it
        assert self._proc.stdin is not None
        self._pipe: IO[bytes] | None = self._proc.stdin

    def _say(self, line: str) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.write(line.encode() + b"\n")
                self._pipe.flush()

    def board(self, path: Path) -> None:
        """Remove the board file at ``path`` if the driver dies."""
        self._say(f"board {path}")

    def close(self) -> None:
        """The driver ends normally (Ray shut down): the watcher exits, killing nothing."""
        self._say("bye")
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.close()
            self._pipe = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)


def _stat(pid: int) -> tuple[int, str] | None:
    """``(ppid, start time)`` of ``pid`` from ``/proc`` (None: gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), fields[19].decode()
    except (OSError, IndexError, ValueError):
        return None


def _processes() -> dict[int, tuple[int, str]]:
    found: dict[int, tuple[int, str]] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = _stat(int(name))
                if stat is not None:
                    found[int(name)] = stat
    return found


def _descendants(roots: set[int], table: dict[int, tuple[int, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _names_ray(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"ray" in fh.read().lower()
    except OSError:
        return False


def _reap(noted: dict[int, str]) -> None:
    """Kill the noted processes that are still themselves, and everything below them."""
    for _ in range(3):  # a process forked while the first pass killed its parent is caught next
        table = _processes()
        alive = {pid for pid, started in noted.items() if table.get(pid, (0, ""))[1] == started}
        doomed = alive | _descendants(alive, table)
        for pid in doomed:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not doomed:
            return


def _watch(driver: int) -> None:
    me = os.getpid()
    before = set(_descendants({driver}, _processes()))  # the driver's children before Ray: not Ray's
    noted: dict[int, str] = {}
    boards: list[str] = []
    stdin = sys.stdin.buffer
    buffered = b""
    while True:
        ready, _, _ = select.select([stdin], [], [], WATCH_SECONDS)
        if ready:
            chunk = os.read(stdin.fileno(), 4096)
            if not chunk:
                break  # the driver is gone (or closed the pipe without goodbye)
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                if line == b"bye":
                    return
                if line.startswith(b"board "):
                    boards.append(line[6:].decode())
        table = _processes()
        for pid in _descendants({driver}, table) - before - {me}:
            if pid not in noted and _names_ray(pid):
                noted[pid] = table[pid][1]
    _reap(noted)
    for board in boards:
        with contextlib.suppress(OSError):
            os.unlink(board)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch(int(sys.argv[1]))
