"""The run directory: its lock, ``run.json``, and the result parts that are this run's.

Layout::

    RUN_DIR/
      run.json            config, fingerprint, versions, counts, the run's id and its parts'
                          digests (rewritten atomically)
      results/part-NNNNNN.parquet   one row per judged input row, each part written atomically
      .lock               holds the writer's pid (for ``batchjudge status``)

**The lock** is a ``flock`` on the run directory itself, which no one deletes by accident
while a run writes in it (deleting ``.lock`` used to let a second writer in); ``.lock`` is
locked too, for older versions that lock only it, and put back if it is deleted. Before each
write the run checks that its path is still the directory it locked and that ``.lock`` is
still its own: where folders cannot be locked (NFS), ``.lock`` alone guards the directory,
and a run that finds it deleted and taken by another writer stops before writing again.

**Files** are written atomically (:mod:`batchjudge.engine.files`): a ``kill -9`` at any instant
loses only the writer's unflushed buffer, whose rows are sent again on resume: calls are
at-least-once, results exactly-once.

**A run directory holds only its own parts.** A run has an id (``run_id`` in ``run.json``,
random, made with the run and kept across its sessions) that every part it writes carries
in its metadata, and ``run.json`` records each part's digest (``parts``: ``{name: digest}``,
BLAKE2 of the file's bytes), rewritten after each part. Every reader (``run``, ``report``,
``status``, a dry run: :meth:`RunDir.verified_parts`) checks the parts present against it:

- a recorded part must have its recorded digest, byte for byte; one that is missing was
  deleted to judge its rows again (the documented way) and is dropped from the record;
- a part ``run.json`` does not record is what a crash between a part and the next
  ``run.json`` leaves: it is accepted only when it carries this run's id and checks out whole
  (:func:`~batchjudge.engine.parts.read_part`: schema, checksums, digest of every value), then
  recorded;
- anything else (another run's part, one whose bytes changed, one without a run id in a run
  that has one, parts without ``run.json``) is a :class:`~batchjudge.errors.CheckpointError`
  naming the part and what to do; so is any other visible file in ``results/``, and a row id
  found in two parts (a part copied twice), never counted twice.

A ``run.json`` written before run ids (no ``run_id``) is a legacy run: its parts, which carry
no id, are accepted on their own checks (a part that carries a run id is refused: it comes
from another directory), and its next session gives the run an id and records their digests,
which binds them from then on.

**A run directory in object storage** (``--out s3://...``) is this class with its writes
replaced (:class:`~batchjudge.engine.objrundir.ObjectRunDir` overrides the hooks
``_fetch_meta``, ``_store_meta``, ``parts``, ``_commit_part``, the lock's ``open``/``close``/
``_check_owner``, ``reset`` and ``drop_rows``): every check above is shared.

``--retry-failed`` (and ``--allow-changed-inputs``) rewrites the parts without some rows
(:meth:`RunDir.drop_rows`) through a staged directory swap: the new parts are written to ``results.new``, their digests recorded in ``run.json``
(``parts_staged``) beside the current ones, then the folders are swapped with two renames and
``run.json`` settles on the new set. A crash at any point leaves one whole set, which the
digests of one or the other accept, and the next session settles the record.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from batchjudge.core.results import STATUS_FAILED
from batchjudge.engine.files import ADVICE, atomic_write_bytes, fsync_dir, storage_error
from batchjudge.engine.parts import (
    PartFile,
    conform,
    corrupt,
    file_digest,
    from_columns,
    list_parts,
    listed,
    part_number,
    read_part,
    write_part_file,
    written_by,
)
from batchjudge.engine.record import check_schema_version
from batchjudge.errors import CheckpointError

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
_RUN_ID = "run_id"
_PARTS = "parts"
_PARTS_STAGED = "parts_staged"
"""The keys of ``run.json`` that :class:`RunDir` owns (see the module docstring)."""


def key_hash(row_id: str) -> int:
    """A 64-bit hash of a row key, used for the compact done-set (8 bytes a row)."""
    return int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8).digest(), "little")


def key_hashes_in_order(row_ids: Iterable[str]) -> np.ndarray:
    """The 64-bit hashes of ``row_ids``, in their order."""
    return np.fromiter((key_hash(r) for r in row_ids), dtype=np.uint64)


def key_hashes(row_ids: Iterable[str]) -> np.ndarray:
    """Sorted unique 64-bit hashes of ``row_ids``."""
    return np.unique(key_hashes_in_order(row_ids))


def _new_run_id() -> str:
    return secrets.token_hex(16)


def _pid(folder: Path) -> int:
    try:
        text = (folder / _LOCK).read_bytes()[:32].decode("ascii", "replace").strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def lock_holder(path: str | os.PathLike[str]) -> int | None:
    """The pid of the run writing in ``path`` (0 when its pid is unreadable), or None when no
    run holds the lock. Only tries a shared lock on the directory (and on ``.lock``, which
    older versions lock), released at once, so it never stands in a run's way for longer
    than that instant."""
    folder = Path(path)
    for target in (folder, folder / _LOCK):
        try:
            fd = os.open(target, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _pid(folder)
            except OSError:
                continue  # not lockable here (a folder on NFS)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return None


def _digests(value: Any, key: str, where: Path) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise CheckpointError(f"{where}: damaged ({key!r} is not a map of part names to digests); "
                              "pass --overwrite to start over, or use another --out")
    return dict(value)


@dataclass(slots=True)
class _Ledger:
    """What ``run.json`` says about the parts: the run they belong to and each one's digest."""

    run_id: str | None
    """None: a ``run.json`` written before run ids (see the module docstring)."""
    parts: dict[str, str] = field(default_factory=dict)
    staged: dict[str, str] = field(default_factory=dict)
    """The parts a ``--retry-failed`` swap puts in place: until it settles, either set is the run's."""
    stored: bool = True
    """Whether ``run.json`` exists (parts without it belong to no known run)."""

    @classmethod
    def of(cls, meta: Mapping[str, Any] | None, where: Path) -> _Ledger:
        """The ledger of the stored ``meta`` (a new run's when there is none)."""
        if meta is None:
            return cls(_new_run_id(), stored=False)
        run_id = meta.get(_RUN_ID)
        if run_id is not None and not (isinstance(run_id, str) and run_id):
            raise CheckpointError(f"{where}: damaged ({_RUN_ID!r} is not a run id); "
                                  "pass --overwrite to start over, or use another --out")
        return cls(run_id, _digests(meta.get(_PARTS), _PARTS, where),
                   _digests(meta.get(_PARTS_STAGED), _PARTS_STAGED, where))

    def highest(self) -> int:
        """The highest part number recorded (-1 for none): a new part never takes a name
        ``run.json`` may still record with another digest."""
        return max((part_number(Path(n)) for n in (*self.parts, *self.staged)), default=-1)

    def to_json(self) -> dict[str, Any]:
        """The keys of ``run.json`` the ledger owns. Not scrubbed: they are generated (hex
        digests of the engine's own files), and a short key that happened to occur in one
        must not mangle it."""
        assert self.run_id is not None
        owned: dict[str, Any] = {_RUN_ID: self.run_id, _PARTS: dict(sorted(self.parts.items()))}
        if self.staged:
            owned[_PARTS_STAGED] = dict(sorted(self.staged.items()))
        return owned


def _changed(part: PartFile) -> CheckpointError:
    return CheckpointError(
        f"{part}: not the part this run recorded under that name (it reads whole, but its bytes do not "
        "match the digest in run.json: an older copy restored, or the file edited); delete it (the same "
        "command judges its rows again) or restore the right one from a backup"
    )


def _not_ours(part: PartFile, theirs: str | None, ours: str | None) -> CheckpointError:
    if ours is None:
        why = (f"written by run {theirs}, but this run's run.json names no run (it was written by an "
               "older batchjudge), so the part comes from another run directory")
    elif theirs is None:
        why = ("not recorded in run.json and carries no run id, so it comes from another run directory "
               "(or was restored from an older batchjudge's run)")
    else:
        why = f"written by another run (run id {theirs}; this run is {ours})"
    return CheckpointError(f"{part}: {why}; move it out of results/ (this run judges its own rows), "
                           "then run the same command again")


class RunDir:
    """A run directory, locked for the lifetime of the object (use it as a context manager).

    Unopened, it is a read-only look (:meth:`read_meta`, :meth:`verified_parts`,
    :meth:`done_keys`): no lock, no recovery, nothing written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._dir_fd: int | None = None
        self._lock_fd: int | None = None
        self._next_part: int | None = None
        self._ledger: _Ledger | None = None
        self._highest = -1
        """The highest part number ``run.json`` recorded when read (see :meth:`_Ledger.highest`)."""
        self._checked = False
        """Whether the parts were checked against the ledger (:meth:`verified_parts`)."""
        self.took_over: str | None = None
        """Set by :meth:`open` when it took the run over from a driver that is gone (an object
        store's lease: :mod:`batchjudge.engine.objstore`): how, for the run's warnings."""

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
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise storage_error(self.path, exc, "open the run directory for writing") from exc
        try:
            self._lock_or_busy(fd)
        except OSError:
            pass  # folders cannot be locked here (NFS): .lock alone, checked before each write
        self._dir_fd = fd
        try:
            self._lock_file()
        except OSError as exc:
            self.close()
            raise storage_error(self.path, exc, "open the run directory for writing") from exc
        except BaseException:
            self.close()
            raise
        try:
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

    def _busy(self) -> CheckpointError:
        return CheckpointError(f"{self.path}: another batchjudge run is writing here")

    def _lock_or_busy(self, fd: int) -> None:
        """Take ``fd``'s exclusive lock at once; when another run holds it, close ``fd`` and
        raise the busy error (any other OSError is the caller's, ``fd`` left open)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise self._busy() from exc

    def _lock_file(self) -> None:
        """Lock ``.lock`` (created if needed: what older versions lock) and write the pid in it."""
        fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock_or_busy(fd)
        except OSError:
            os.close(fd)
            raise
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._lock_fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for `batchjudge status`

    def _check_owner(self) -> None:
        """Before a write: the path is still the directory this run locked (CheckpointError if
        it was moved or replaced), and ``.lock`` is still there (put back if it was deleted)."""
        if self._dir_fd is None or self._lock_fd is None:
            return  # not opened: a test or a tool writing into a folder of its own
        held = os.fstat(self._dir_fd)
        try:
            here = os.stat(self.path)
        except OSError:
            here = None
        if here is None or (here.st_dev, here.st_ino) != (held.st_dev, held.st_ino):
            raise CheckpointError(
                f"{self.path}: the run directory was moved or replaced while this run wrote to it, so "
                "this run stops (what it wrote is where the directory went); run the same command again"
            )
        mine = os.fstat(self._lock_fd)
        try:
            lock = os.stat(self.path / _LOCK)
        except FileNotFoundError:
            lock = None
        if lock is None or (lock.st_dev, lock.st_ino) != (mine.st_dev, mine.st_ino):
            try:
                self._lock_file()
            except OSError as exc:
                raise storage_error(self.path / _LOCK, exc, "put back the lock file") from exc

    def reset(self, also: Iterable[str] = ()) -> None:
        """Start over: remove ``run.json`` (readable or not), every part, any staged swap, and
        the folders named in ``also``; only what the engine writes (a foreign file in
        ``results/`` is an error naming it, left for its owner). The run gets a new id."""
        results = self.path / _RESULTS
        try:
            (self.path / _RUN_JSON).unlink(missing_ok=True)
            for part in list_parts(results):
                part.unlink()
            for name in (_STAGED, _RETIRED, *also):
                if (self.path / name).is_dir():
                    shutil.rmtree(self.path / name)
            fsync_dir(self.path)
        except OSError as exc:
            raise storage_error(self.path, exc, "remove the earlier results") from exc
        self._forget()

    def _forget(self) -> None:
        """After a reset: a new run, with a new id and no parts."""
        self._next_part = None
        self._ledger, self._highest, self._checked = _Ledger.of(None, self.path / _RUN_JSON), -1, True

    def close(self) -> None:
        """Release the lock."""
        for fd in (self._lock_fd, self._dir_fd):
            if fd is not None:
                with contextlib.suppress(OSError):  # not locked (a folder on NFS)
                    fcntl.flock(fd, fcntl.LOCK_UN)  # a forked child holding the fd keeps no lock
                os.close(fd)
        self._lock_fd = self._dir_fd = None

    def _recover(self) -> None:
        staged, results, retired = (self.path / n for n in (_STAGED, _RESULTS, _RETIRED))
        if staged.exists() and not results.exists():
            os.replace(staged, results)  # crashed between the two renames: finish the swap
        if staged.exists():
            shutil.rmtree(staged)  # crashed while staging: the old results stand
        if retired.exists():
            shutil.rmtree(retired)

    # -- run.json ----------------------------------------------------------------------
    def _fetch_meta(self) -> bytes | None:
        """The stored ``run.json``'s bytes, or None when there is none."""
        path = self.path / _RUN_JSON
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(path, exc, "read the run's record") from exc

    def _read_json(self) -> dict[str, Any] | None:
        """The stored ``run.json`` parsed (None: absent); CheckpointError when it is damaged."""
        path = self.path / _RUN_JSON
        data = self._fetch_meta()
        if data is None:
            return None
        try:
            meta = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(
                f"{path}: damaged (not valid JSON: {exc}); pass --overwrite to start over, or use another --out"
            ) from exc
        if not isinstance(meta, dict):
            raise CheckpointError(
                f"{path}: not a batchjudge run.json; pass --overwrite to start over, or use another --out"
            )
        return meta

    def _loaded(self) -> _Ledger:
        """The ledger, read from ``run.json`` the first time it is needed."""
        if self._ledger is None:
            self._ledger = _Ledger.of(self._read_json(), self.path / _RUN_JSON)
            self._highest = self._ledger.highest()
        return self._ledger

    def read_meta(self) -> dict[str, Any] | None:
        """The stored ``run.json``, or None for a new run directory."""
        meta = self._read_json()
        if meta is not None and "fingerprint" not in meta:
            raise CheckpointError(
                f"{self.path / _RUN_JSON}: not a batchjudge run.json; pass --overwrite to start over, "
                "or use another --out"
            )
        if meta is not None:
            check_schema_version(meta, self.path / _RUN_JSON)
        if self._ledger is None:
            self._ledger = _Ledger.of(meta, self.path / _RUN_JSON)
            self._highest = self._ledger.highest()
        return meta

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Atomically replace ``run.json`` with ``meta`` and the run's id and parts' digests
        (the keys this class owns, whatever ``meta`` says about them)."""
        ledger = self._settled()
        self._check_owner()
        self._store_meta({**meta, **ledger.to_json()})
        ledger.stored = True

    def _store_meta(self, data: Mapping[str, Any]) -> None:
        """Replace the stored ``run.json`` with ``data`` (atomically)."""
        _atomic_write_json(self.path / _RUN_JSON, data)

    def _rewrite_meta(self) -> None:
        """``run.json`` as stored, with the ledger as it is now."""
        self.write_meta(self._read_json() or {})

    # -- result parts ------------------------------------------------------------------
    def _results(self) -> Path:
        results = self.path / _RESULTS
        if self._dir_fd is None and not results.exists() and (self.path / _STAGED).is_dir():
            return self.path / _STAGED  # a look between a swap's two renames: the set recovery keeps
        return results

    def parts(self) -> Sequence[PartFile]:
        """The part files present, in write order, not yet checked (see :func:`list_parts`)."""
        return list_parts(self._results())

    def verified_parts(self) -> Sequence[PartFile]:
        """The parts present, each checked to be this run's (see the module docstring), in
        write order; CheckpointError naming the first that is not. The ledger then records
        exactly these, and is written with the next ``run.json``."""
        ledger = self._loaded()
        parts = self.parts()
        if parts and not ledger.stored:
            raise CheckpointError(
                f"{self.path}: results/ holds results but run.json is missing, so they cannot be matched "
                "to a run; restore run.json, or pass --overwrite to `batchjudge run` to discard them and "
                "start over, or use another --out"
            )
        digests: dict[str, str] = {}
        for part in parts:
            try:
                digest = file_digest(part)
            except OSError as exc:
                if exc.errno in ADVICE:
                    raise storage_error(str(part), exc, "read a results part") from exc
                raise corrupt(part, exc) from exc
            known = [d for d in (ledger.parts.get(part.name), ledger.staged.get(part.name)) if d is not None]
            if digest not in known:  # unrecorded (a crash before run.json), or not what was recorded
                theirs = written_by(read_part(part))  # the whole part, checked: damaged is said first
                if known and theirs in (None, ledger.run_id):
                    raise _changed(part)
                if theirs != ledger.run_id:
                    raise _not_ours(part, theirs, ledger.run_id)
            digests[part.name] = digest
        ledger.run_id = ledger.run_id or _new_run_id()  # a legacy run adopts an id, and its parts
        ledger.parts, ledger.staged = digests, {}
        self._checked = True
        return parts

    def _settled(self) -> _Ledger:
        """The ledger, once the parts present were checked against it (writes need it)."""
        if not self._checked:
            self.verified_parts()
        assert self._ledger is not None and self._ledger.run_id is not None
        return self._ledger

    def write_part(self, columns: Mapping[str, list[Any]]) -> PartFile:
        """Write one part atomically from column lists in ``RESULT_SCHEMA`` order; its digest
        is recorded with the next ``run.json``."""
        ledger = self._settled()
        assert ledger.run_id is not None
        self._check_owner()
        table = from_columns(columns)
        if self._next_part is None:
            self._next_part = 1 + max([self._highest, *(part_number(p) for p in self.parts())])
        path, digest = self._commit_part(f"part-{self._next_part:06d}.parquet", table, ledger.run_id)
        ledger.parts[path.name] = digest
        self._next_part += 1
        return path

    def _commit_part(self, name: str, table: pa.Table, run_id: str) -> tuple[PartFile, str]:
        """Write the part ``name`` (atomically); return it and its digest."""
        path = self.path / _RESULTS / name
        return path, write_part_file(table, path, run_id)

    def done_keys(self, *, without_failed: bool = False) -> tuple[np.ndarray, dict[str, int]]:
        """Hashes of every row with a result, and the stored counts by status; with
        ``without_failed``, as they will be once ``--retry-failed`` dropped the failed rows.

        Every part is verified (:meth:`verified_parts`); a row id in more than one part is a
        CheckpointError naming the parts, so no result is ever counted twice.
        """
        hashes: list[np.ndarray] = []
        counts: dict[str, int] = {}
        parts = self.verified_parts()
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

    def _refuse_repeats(self, parts: Sequence[PartFile], twice: np.ndarray) -> None:
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
            f"remove the extra part(s) ({listed(files)} repeat earlier rows), then run the same "
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

        The new parts are staged in ``results.new`` and recorded in ``run.json`` beside the
        current ones, then swapped in with two renames, then ``run.json`` settles on them; any
        crash leaves either the old or the new set whole and recorded (see :meth:`_recover`).
        """
        parts = self.verified_parts()
        ledger = self._settled()
        assert ledger.run_id is not None
        self._check_owner()
        staged = self.path / _STAGED
        try:
            staged.mkdir()
        except OSError as exc:
            raise storage_error(staged, exc, f"stage the results without {without}") from exc
        dropped = 0
        digests: dict[str, str] = {}
        try:
            for part in parts:
                table = conform(read_part(part))
                kept = table.filter(pa.array(~np.asarray(drop(table), dtype=bool)))
                dropped += table.num_rows - kept.num_rows
                if kept.num_rows:
                    digests[part.name] = write_part_file(kept, staged / part.name, ledger.run_id)
            if dropped == 0:
                shutil.rmtree(staged)
                return 0
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        ledger.staged = digests
        self._rewrite_meta()  # from here on, either set is this run's
        try:
            fsync_dir(self.path)
            os.replace(self.path / _RESULTS, self.path / _RETIRED)
            os.replace(staged, self.path / _RESULTS)
            fsync_dir(self.path)
        except OSError as exc:
            raise storage_error(self.path, exc, f"swap in the results without {without}") from exc
        ledger.parts, ledger.staged = digests, {}
        self._rewrite_meta()
        try:
            shutil.rmtree(self.path / _RETIRED)
        except OSError as exc:
            raise storage_error(self.path, exc, f"remove the results with {without}") from exc
        return dropped


def _atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
                       "write the run's record (run.json)")
