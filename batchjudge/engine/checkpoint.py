"""The run directory: an exclusive lock, ``run.json``, and atomically written result parts.

Layout::

    RUN_DIR/
      run.json            config, fingerprint, versions, counts (rewritten atomically)
      results/part-*.parquet   one row per judged input row, each part written atomically
      .lock               held (flock) while a run writes here; holds the writer's pid

Every file is written to a temporary name, fsynced, renamed, and the directory fsynced, so a
``kill -9`` at any instant leaves either the old or the new file, never half of one. A crash
loses only the writer's unflushed buffer, whose rows are sent again on resume: calls are
at-least-once, results exactly-once. ``--retry-failed`` rewrites the parts without their
failed rows through a staged directory swap that a crash at any point leaves recoverable.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from batchjudge.core.results import STATUS_FAILED
from batchjudge.core.schema import RESULT_SCHEMA
from batchjudge.errors import CheckpointError

__all__ = ["RunDir", "key_hash", "key_hashes", "key_hashes_in_order", "lock_holder"]

_RUN_JSON = "run.json"
_LOCK = ".lock"
_RESULTS = "results"
_STAGED = "results.new"
_RETIRED = "results.old"


def key_hash(row_id: str) -> int:
    """A 64-bit hash of a row key, used for the compact done-set (8 bytes a row)."""
    return int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8).digest(), "little")


def key_hashes_in_order(row_ids: Iterable[str]) -> np.ndarray:
    """The 64-bit hashes of ``row_ids``, in their order."""
    return np.fromiter((key_hash(r) for r in row_ids), dtype=np.uint64)


def key_hashes(row_ids: Iterable[str]) -> np.ndarray:
    """Sorted unique 64-bit hashes of ``row_ids``."""
    return np.unique(key_hashes_in_order(row_ids))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def lock_holder(path: str | os.PathLike[str]) -> int | None:
    """The pid of the run writing in ``path`` (0 when its pid is unreadable), or None when no
    run holds the lock. Only tries a shared lock, released at once, so it never stands in a
    run's way for longer than that instant."""
    try:
        fd = os.open(Path(path) / _LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunDir:
    """A run directory, locked for the lifetime of the object (use it as a context manager)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._next_part = 0

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> RunDir:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the directory if needed, take the lock, and finish any interrupted swap."""
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"{self.path}: exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise CheckpointError(f"{self.path}: another batchjudge run is writing here") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for `batchjudge status`; the lock is the flock
        self._lock_fd = fd
        self._recover()
        (self.path / _RESULTS).mkdir(exist_ok=True)
        for stale in (self.path / _RESULTS).glob(".*.tmp"):
            stale.unlink()
        self._next_part = 1 + max((self._part_number(p) for p in self.parts()), default=-1)

    def close(self) -> None:
        """Release the lock."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _recover(self) -> None:
        staged, results, retired = (self.path / n for n in (_STAGED, _RESULTS, _RETIRED))
        if staged.exists() and not results.exists():
            os.replace(staged, results)  # crashed between the two renames: finish the swap
        if staged.exists():
            shutil.rmtree(staged)  # crashed while staging: the old results stand
        if retired.exists():
            shutil.rmtree(retired)

    # -- run.json ----------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any] | None:
        """The stored ``run.json``, or None for a new run directory."""
        path = self.path / _RUN_JSON
        if not path.exists():
            return None
        try:
            meta = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(meta, dict) or "fingerprint" not in meta:
            raise CheckpointError(f"{path}: not a batchjudge run.json")
        return meta

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Atomically replace ``run.json``."""
        _atomic_write_bytes(
            self.path / _RUN_JSON, orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        )

    # -- result parts ------------------------------------------------------------------
    @staticmethod
    def _part_number(path: Path) -> int:
        return int(path.stem.split("-")[1])

    def parts(self) -> list[Path]:
        """The committed result parts, in write order."""
        return sorted((self.path / _RESULTS).glob("part-*.parquet"), key=self._part_number)

    def write_part(self, columns: Mapping[str, list[Any]]) -> Path:
        """Write one part atomically from column lists in ``RESULT_SCHEMA`` order."""
        table = pa.Table.from_pydict(dict(columns), schema=RESULT_SCHEMA)
        path = self.path / _RESULTS / f"part-{self._next_part:06d}.parquet"
        self._write_table(table, path)
        self._next_part += 1
        return path

    @staticmethod
    def _write_table(table: pa.Table, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def done_keys(self, *, without_failed: bool = False) -> tuple[np.ndarray, dict[str, int]]:
        """Hashes of every row with a result, and the stored counts by status; with
        ``without_failed``, as they will be once ``--retry-failed`` dropped the failed rows."""
        hashes: list[np.ndarray] = []
        counts: dict[str, int] = {}
        for part in self.parts():
            table = pq.read_table(part, columns=["row_id", "status"])
            if without_failed:
                import pyarrow.compute as pc  # a dry run with --retry-failed only

                table = table.filter(pc.not_equal(table.column("status"), STATUS_FAILED))
            hashes.append(key_hashes(table.column("row_id").to_pylist()))
            for status, n in zip(*np.unique(table.column("status").to_numpy(zero_copy_only=False), return_counts=True)):
                counts[str(status)] = counts.get(str(status), 0) + int(n)
        done = np.unique(np.concatenate(hashes)) if hashes else np.empty(0, dtype=np.uint64)
        return done, counts

    def drop_failed(self) -> int:
        """Rewrite the results without their ``failed`` rows; return how many were dropped.

        The new parts are staged in ``results.new``, then swapped in with two renames; any
        crash leaves either the old or the new set whole (see :meth:`_recover`).
        """
        import pyarrow.compute as pc  # only --retry-failed needs it (its import costs ~0.1 s)

        staged = self.path / _STAGED
        staged.mkdir()
        dropped = 0
        for part in self.parts():
            table = pq.read_table(part, schema=RESULT_SCHEMA)
            keep = pc.not_equal(table.column("status"), STATUS_FAILED)
            kept = table.filter(keep)
            dropped += table.num_rows - kept.num_rows
            if kept.num_rows:
                self._write_table(kept, staged / part.name)
        if dropped == 0:
            shutil.rmtree(staged)
            return 0
        _fsync_dir(self.path)
        os.replace(self.path / _RESULTS, self.path / _RETIRED)
        os.replace(staged, self.path / _RESULTS)
        _fsync_dir(self.path)
        shutil.rmtree(self.path / _RETIRED)
        return dropped
