"""Files the run directory writes: atomically, and with errors a user can act on.

Every file is written to a temporary name, fsynced, renamed, and the folder fsynced, so a
``kill -9`` at any instant leaves either the old or the new file, never half of one. When the
file system refuses (full disk, read-only, permission denied) the error is a
:class:`~batchjudge.errors.StorageError` naming the path, the cause and what to do, and no
temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from batchjudge.errors import StorageError

__all__ = ["ADVICE", "atomic", "atomic_write_bytes", "fsync_dir", "storage_error"]

ADVICE: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EROFS: "the file system is read-only: use a writable --out",
    errno.EACCES: "permission denied: make the folder writable, or use another --out",
    errno.EPERM: "operation not permitted: make the folder writable, or use another --out",
}
"""What to do about the errors of the file system itself (any other OSError reading a part
means the part is damaged)."""


def storage_error(path: Path | str, exc: OSError, doing: str) -> StorageError:
    """The one-line :class:`StorageError` for ``exc`` met while ``doing`` something at ``path``."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    code = errno.errorcode.get(exc.errno or 0)
    advice = ADVICE.get(exc.errno or 0, "fix the cause")
    return StorageError(
        f"{path}: cannot {doing}: {cause}{f' ({code})' if code else ''}; {advice}, then run the same "
        "command again (results written so far are kept)",
        path=os.fspath(path),
    )


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic(path: Path, doing: str) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; once the body has written and fsynced it,
    rename it over ``path`` and fsync the folder. On any failure the temporary file is
    removed and an OSError becomes a :class:`StorageError`."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise storage_error(path, exc, doing) from exc
        raise


def atomic_write_bytes(path: Path, data: bytes | memoryview, doing: str) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic`)."""
    with atomic(path, doing) as tmp, tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
