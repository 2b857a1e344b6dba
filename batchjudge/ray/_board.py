"""A ``Retry-After`` pause shared at memory speed by the workers of one machine.

A 429 reaches the other workers through the shared limiter: the worker's report, then every
other worker's long poll, two actor calls. On a busy machine that takes 10-25 ms, during which
the other workers keep sending at their booked times, and those requests reach the server
inside the pause it just asked for. Workers on one machine share a clock (``time.monotonic``
is the machine's), so they can share the pause itself: a :class:`CooldownBoard` is a 16-byte
file in shared memory (``/dev/shm`` where there is one) holding the end of the latest pause;
a worker that meets a 429, or hears of one, writes it there, and every worker reads it right
before each send. The limiter's broadcast still carries the pause to other machines, and
everything else.

The end is stored twice: a read that finds the two copies different met a write half done
and reads again (then takes the later copy: a writer killed between the two leaves them
different for good, until the next write). Writers take a file lock, so two 429s at once keep
the later end.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import tempfile
from pathlib import Path

__all__ = ["CooldownBoard", "board_path"]

_FORMAT = struct.Struct("<dd")
_READS = 3
"""Reads of a board whose copies differ (a write half done) before taking the later copy."""


def board_path(name: str) -> Path:
    """Where the board called ``name`` lives on this machine: shared memory when there is
    some, the temporary directory otherwise."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"batchjudge-cooldown-{name}"


class CooldownBoard:
    """The end of the current pause, on the machine's monotonic clock, shared by every process
    that opens the board of the same name (the first one creates it, with no pause)."""

    def __init__(self, name: str) -> None:
        self.path = board_path(name)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(self._fd).st_size < _FORMAT.size:
                os.ftruncate(self._fd, _FORMAT.size)  # zeros: no pause; a second opener's truncate keeps the size
            self._map = mmap.mmap(self._fd, _FORMAT.size)
        except BaseException:
            os.close(self._fd)
            raise

    @classmethod
    def open(cls, name: str) -> CooldownBoard | None:
        """The board called ``name``, or None when this machine cannot hold one (no writable
        shared memory or temporary directory): the pause then travels through the limiter
        alone, as across machines."""
        try:
            return cls(name)
        except OSError:
            return None

    def until(self) -> float:
        """The end of the latest pause any worker wrote (0.0: none yet)."""
        for _ in range(_READS):
            first, second = _FORMAT.unpack_from(self._map)
            if first == second:
                return float(first)
        # A writer killed between the two copies left them different for good (each copy is
        # an aligned 8-byte store, whole on its own): the later end is the one it meant.
        return float(max(first, second))

    def extend(self, until: float) -> None:
        """Make the pause last until ``until`` at least (never shortens it)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if until > self.until():
                _FORMAT.pack_into(self._map, 0, until, until)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Unmap and close (the file stays for the other workers; see :meth:`remove`)."""
        if not self._map.closed:
            self._map.close()
            os.close(self._fd)

    @staticmethod
    def remove(name: str) -> None:
        """Delete this machine's board called ``name`` (the run is over; workers still holding
        it keep their mapping)."""
        with contextlib.suppress(OSError):  # at exit: nothing to do about a board already gone
            board_path(name).unlink(missing_ok=True)
