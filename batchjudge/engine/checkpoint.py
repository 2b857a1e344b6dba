"""The run directory: an exclusive lock, ``run.json``, and atomically written result parts.

Layout::

    RUN_DIR/
      run.json            config, fingerprint, versions, counts (rewritten atomically)
      results/part-NNNNNN.parquet   one row per judged input row, each part written atomically
      .lock               held (flock) while a run writes here; holds the writer's pid

Every file is written to a temporary name, fsynced, renamed, and the directory fsynced, so a
``kill -9`` at any instant leaves either the old or the new file, never half of one. A crash
loses only the writer's unflushed buffer, whose rows are sent again on resume: calls are
at-least-once, results exactly-once. ``--retry-failed`` (and ``--allow-changed-inputs``)
rewrites the parts without some rows (:meth:`RunDir.drop_rows`) through a staged directory
swap that a crash at any point leaves recoverable.

The results check themselves when read (:func:`read_part`, :func:`list_parts`; the report
reads them the same way):

- parts are written with Parquet page checksums, verified on every read, and carry in their
  metadata the row count and a BLAKE2 digest of their ``row_id`` and ``status`` columns, so a
  flipped bit anywhere (data pages or footer) is a :class:`~batchjudge.errors.CheckpointError`
  naming the part, never a row read as another;
- only ``part-NNNNNN.parquet`` files are read; any other visible file in ``results/`` is named
  in an error (hidden files are the engine's own temporary files, or the system's);
- a row id found in two parts (a part copied or restored twice) is an error naming the
  parts, never a row counted twice.

When the file system refuses (full disk, read-only, permission denied) the error is a
:class:`~batchjudge.errors.StorageError` naming the path, the cause and what to do, and no
temporary file is left behind: what was written before stays valid, and the same command
resumes once the cause is fixed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from batchjudge.core.results import STATUS_FAILED
from batchjudge.core.schema import RESULT_SCHEMA
from batchjudge.errors import CheckpointError, StorageError

__all__ = [
    "RunDir",
    "key_hash",
    "key_hashes",
    "key_hashes_in_order",
    "list_parts",
    "lock_holder",
    "read_part",
    "storage_error",
]

_RUN_JSON = "run.json"
_LOCK = ".lock"
_RESULTS = "results"
_STAGED = "results.new"
_RETIRED = "results.old"
_PART = re.compile(r"part-(\d{6,})\.parquet")
_DIGEST = b"batchjudge.rows"
"""Part metadata: ``COUNT:HEX``, the row count and the digest of ``row_id`` and ``status``."""
_SHOWN = 3
"""File names or row ids an error lists before saying how many more."""

_ADVICE: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EROFS: "the file system is read-only: use a writable --out",
    errno.EACCES: "permission denied: make the folder writable, or use another --out",
    errno.EPERM: "operation not permitted: make the folder writable, or use another --out",
}


def storage_error(path: Path | str, exc: OSError, doing: str) -> StorageError:
    """The one-line :class:`StorageError` for ``exc`` met while ``doing`` something at ``path``."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    code = errno.errorcode.get(exc.errno or 0)
    advice = _ADVICE.get(exc.errno or 0, "fix the cause")
    return StorageError(
        f"{path}: cannot {doing}: {cause}{f' ({code})' if code else ''}; {advice}, then run the same "
        "command again (results written so far are kept)",
        path=os.fspath(path),
    )


def _listed(names: Sequence[str], more: int = 0) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    rest = len(names) - _SHOWN + more
    return shown + (f" and {rest} more" if rest > 0 else "")


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


@contextlib.contextmanager
def _atomic(path: Path, doing: str) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; once the body has written and fsynced it,
    rename it over ``path`` and fsync the folder. On any failure the temporary file is
    removed and an OSError becomes a :class:`StorageError`."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise storage_error(path, exc, doing) from exc
        raise


def _atomic_write_bytes(path: Path, data: bytes, doing: str) -> None:
    with _atomic(path, doing) as tmp, tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _digest(row_ids: Sequence[str], statuses: Sequence[str]) -> bytes:
    """``COUNT:HEX`` for a part's ``row_id`` and ``status`` columns (see :data:`_DIGEST`)."""
    h = hashlib.blake2b(digest_size=16)
    h.update("\x1e".join(row_ids).encode("utf-8", "surrogatepass"))
    h.update(b"\x1d")
    h.update("\x1e".join(statuses).encode("utf-8", "surrogatepass"))
    return f"{len(row_ids)}:{h.hexdigest()}".encode()


def _part_number(path: Path) -> int:
    match = _PART.fullmatch(path.name)
    assert match is not None, path
    return int(match[1])


def list_parts(results: Path) -> list[Path]:
    """The engine's parts in ``results`` in write order; CheckpointError naming any other
    visible file there (hidden files are temporary files or the system's, and skipped)."""
    if not results.is_dir():
        return []
    try:
        names = sorted(os.listdir(results))
    except OSError as exc:
        raise storage_error(results, exc, "list the results") from exc
    foreign = [n for n in names if not n.startswith(".") and not _PART.fullmatch(n)]
    if foreign:
        raise CheckpointError(
            f"{results}: {_listed(foreign)} not written by batchjudge (only part-NNNNNN.parquet "
            "files belong here); move them out of results/, then run the same command again"
        )
    return sorted((results / n for n in names if _PART.fullmatch(n)), key=_part_number)


def read_part(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One part's ``columns`` (all by default; those an older part lacks are left out),
    verified: page checksums, and the row digest when the part has one (parts written before
    it existed have none).

    Raises CheckpointError naming the part when it does not check out, StorageError when the
    file system refuses the read.
    """
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        names = parquet.schema_arrow.names
        if "row_id" not in names or "status" not in names:
            raise ValueError("no row_id/status column: not a results part")
        wanted = None if columns is None else [
            c for c in dict.fromkeys([*columns, "row_id", "status"]) if c in names
        ]
        table = parquet.read(columns=wanted)
        expected = (parquet.schema_arrow.metadata or {}).get(_DIGEST)
        if expected is not None:
            found = _digest(table.column("row_id").to_pylist(), table.column("status").to_pylist())
            if found != expected:
                raise ValueError("its rows do not match the digest written with it")
    except OSError as exc:
        if exc.errno in _ADVICE:
            raise storage_error(path, exc, "read a results part") from exc
        raise _corrupt(path, exc) from exc
    except Exception as exc:  # noqa: BLE001 - any failure to decode a part means it is damaged
        raise _corrupt(path, exc) from exc
    return table if columns is None else table.select([c for c in columns if c in table.column_names])


def _from_columns(columns: Mapping[str, list[Any]]) -> pa.Table:
    """A ``RESULT_SCHEMA`` table from Python column lists, built by polars.

    pyarrow builds arrays from Python objects only after importing pandas when it is
    installed (0.25-0.3 s of CPU): done by the first flush, that import held the interpreter
    while the senders worked, and the sends of a 400 RPS run fell to 320-340 a second for
    that second. Polars, already loaded with the datasets in a run, converts without it; it is
    imported here, not with the module, for the processes that never write a part (Ray
    workers). Its schema is spelled out because ``pl.from_arrow`` of an empty table imports
    pandas too.
    """
    import polars as pl

    types = {pa.string(): pl.String, pa.int8(): pl.Int8, pa.int32(): pl.Int32, pa.int64(): pl.Int64,
             pa.float64(): pl.Float64}
    schema = {f.name: types[f.type] for f in RESULT_SCHEMA}
    return pl.DataFrame(dict(columns), schema=schema).to_arrow().cast(RESULT_SCHEMA)


def _conform(table: pa.Table) -> pa.Table:
    """``table`` with ``RESULT_SCHEMA``'s columns, in order (null where an older part lacks one)."""
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in RESULT_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=RESULT_SCHEMA)


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return CheckpointError(
        f"{path}: unreadable results part, damaged ({first}); delete it (the same command judges "
        "its rows again) or restore it from a backup"
    )


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
        self._next_part: int | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> RunDir:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the directory if needed, take the lock, and finish any interrupted swap."""
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"{self.path}: exists and is not a directory; use another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(self.path, exc, "open the run directory for writing") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise CheckpointError(f"{self.path}: another batchjudge run is writing here") from exc
        self._lock_fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for `batchjudge status`; the lock is the flock
            self._recover()
            (self.path / _RESULTS).mkdir(exist_ok=True)
            for stale in (self.path / _RESULTS).glob(".*.tmp"):
                stale.unlink()
        except OSError as exc:
            self.close()
            raise storage_error(self.path / _RESULTS, exc, "prepare the results folder") from exc
        except BaseException:
            self.close()
            raise
        self._next_part = None

    def reset(self, also: Iterable[str] = ()) -> None:
        """Start over: remove ``run.json`` (readable or not), every part, any staged swap, and
        the folders named in ``also``; only what the engine writes (a foreign file in
        ``results/`` is an error naming it, left for its owner)."""
        results = self.path / _RESULTS
        try:
            (self.path / _RUN_JSON).unlink(missing_ok=True)
            for part in list_parts(results):
                part.unlink()
            for name in (_STAGED, _RETIRED, *also):
                if (self.path / name).is_dir():
                    shutil.rmtree(self.path / name)
            _fsync_dir(self.path)
        except OSError as exc:
            raise storage_error(self.path, exc, "remove the earlier results") from exc
        self._next_part = None

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
        except OSError as exc:
            raise storage_error(path, exc, "read the run's record") from exc
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(
                f"{path}: damaged (not valid JSON: {exc}); pass --overwrite to start over, or use another --out"
            ) from exc
        if not isinstance(meta, dict) or "fingerprint" not in meta:
            raise CheckpointError(
                f"{path}: not a batchjudge run.json; pass --overwrite to start over, or use another --out"
            )
        return meta

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Atomically replace ``run.json``."""
        _atomic_write_bytes(
            self.path / _RUN_JSON, orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
            "write the run's record (run.json)",
        )

    # -- result parts ------------------------------------------------------------------
    def parts(self) -> list[Path]:
        """The committed result parts, in write order (see :func:`list_parts`)."""
        return list_parts(self.path / _RESULTS)

    def write_part(self, columns: Mapping[str, list[Any]]) -> Path:
        """Write one part atomically from column lists in ``RESULT_SCHEMA`` order."""
        table = _from_columns(columns)
        if self._next_part is None:
            self._next_part = 1 + max((_part_number(p) for p in self.parts()), default=-1)
        path = self.path / _RESULTS / f"part-{self._next_part:06d}.parquet"
        self._write_table(table, path)
        self._next_part += 1
        return path

    @staticmethod
    def _write_table(table: pa.Table, path: Path) -> None:
        """Write ``table`` atomically with page checksums and its row digest."""
        digest = _digest(table.column("row_id").to_pylist(), table.column("status").to_pylist())
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _DIGEST: digest})
        with _atomic(path, "write a results part") as tmp, tmp.open("wb") as fh:
            pq.write_table(table, fh, compression="zstd", write_page_checksum=True)
            fh.flush()
            os.fsync(fh.fileno())

    def done_keys(self, *, without_failed: bool = False) -> tuple[np.ndarray, dict[str, int]]:
        """Hashes of every row with a result, and the stored counts by status; with
        ``without_failed``, as they will be once ``--retry-failed`` dropped the failed rows.

        Every part is verified (:func:`read_part`); a row id in more than one part is a
        CheckpointError naming the parts, so no result is ever counted twice.
        """
        hashes: list[np.ndarray] = []
        counts: dict[str, int] = {}
        parts = self.parts()
        for part in parts:
            table = read_part(part, ["row_id", "status"])
            if without_failed:
                import pyarrow.compute as pc  # a dry run with --retry-failed only

                table = table.filter(pc.not_equal(table.column("status"), STATUS_FAILED))
            hashes.append(key_hashes_in_order(table.column("row_id").to_pylist()))
            for status, n in zip(*np.unique(table.column("status").to_numpy(zero_copy_only=False), return_counts=True)):
                counts[str(status)] = counts.get(str(status), 0) + int(n)
        if not hashes:
            return np.empty(0, dtype=np.uint64), counts
        every = np.sort(np.concatenate(hashes))
        twice = np.unique(every[1:][every[1:] == every[:-1]])
        if twice.size:
            self._refuse_repeats(parts, twice)
        return every, counts

    def _refuse_repeats(self, parts: list[Path], twice: np.ndarray) -> None:
        """Name the row ids (and their parts) whose hashes occur twice; a hash collision
        between two distinct ids is let through."""
        where: dict[str, list[str]] = {}
        for part in parts:
            ids = read_part(part, ["row_id"]).column("row_id").to_pylist()
            hit = np.flatnonzero(np.isin(key_hashes_in_order(ids), twice))
            for i in hit.tolist():
                where.setdefault(ids[i], []).append(part.name)
        repeated = {row_id: names for row_id, names in where.items() if len(names) > 1}
        if not repeated:
            return
        files = sorted({n for names in repeated.values() for n in names[1:]})
        example, names = next(iter(repeated.items()))
        raise CheckpointError(
            f"{self.path / _RESULTS}: {len(repeated)} row id(s) have more than one result "
            f"(e.g. {example!r} in {' and '.join(names[:2])}): a part was copied or restored twice; "
            f"remove the extra part(s) ({_listed(files)} repeat earlier rows), then run the same "
            "command again"
        )

    def drop_failed(self) -> int:
        """Rewrite the results without their ``failed`` rows; return how many were dropped."""
        return self.drop_rows(lambda table: table.column("status").to_numpy(zero_copy_only=False) == STATUS_FAILED,
                              "their failed rows")

    def drop_rows(self, drop: Callable[[pa.Table], np.ndarray], without: str) -> int:
        """Rewrite the results without the rows ``drop`` selects (a boolean mask over a part's
        rows, all columns given); return how many were dropped. ``without`` names those rows
        in an error ("their failed rows").

        The new parts are staged in ``results.new``, then swapped in with two renames; any
        crash leaves either the old or the new set whole (see :meth:`_recover`).
        """
        staged = self.path / _STAGED
        try:
            staged.mkdir()
        except OSError as exc:
            raise storage_error(staged, exc, f"stage the results without {without}") from exc
        dropped = 0
        try:
            for part in self.parts():
                table = _conform(read_part(part))
                kept = table.filter(pa.array(~np.asarray(drop(table), dtype=bool)))
                dropped += table.num_rows - kept.num_rows
                if kept.num_rows:
                    self._write_table(kept, staged / part.name)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        try:
            if dropped == 0:
                shutil.rmtree(staged)
                return 0
            _fsync_dir(self.path)
            os.replace(self.path / _RESULTS, self.path / _RETIRED)
            os.replace(staged, self.path / _RESULTS)
            _fsync_dir(self.path)
            shutil.rmtree(self.path / _RETIRED)
        except OSError as exc:
            raise storage_error(self.path, exc, f"swap in the results without {without}") from exc
        return dropped
