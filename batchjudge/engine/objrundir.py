"""A run directory in S3 (or an S3-compatible store): the same :class:`RunDir`, other commits.

The layout, the run id, the parts' digests in ``run.json`` and every check of
:mod:`batchjudge.engine.checkpoint` are the same; only the writes differ, because an object
store has no rename and no ``flock`` (:mod:`batchjudge.engine.objstore`):

- a part is created only if its name is free (``If-None-Match: *``): whole or absent, and
  never over another driver's;
- ``run.json`` is replaced only if it is the version this driver last read or wrote
  (``If-Match``): a driver that lost the run cannot overwrite the record;
- the lock is a lease (``.lease``), renewed while the run writes, checked before each write.

A ``kill -9`` leaves at most a part that ``run.json`` does not record yet: it carries this
run's id and is accepted whole by the next session, exactly as on a local disk.

``--retry-failed`` and ``--allow-changed-inputs`` rewrite parts through recorded stages
instead of a folder swap (:meth:`ObjectRunDir.drop_rows`). Not supported yet (a ConfigError
says so): ``--mode batch`` (its job files) and run directories in ``gs://`` and ``az://``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from batchjudge.engine.checkpoint import RunDir
from batchjudge.engine.objstore import Conflict, Lease, ObjectPart, ObjectPath, S3Store, read_lease
from batchjudge.engine.parts import PART, PartFile, conform, encode_part, listed, part_number, read_part
from batchjudge.engine.stores import is_url, split_url
from batchjudge.errors import CheckpointError, ConfigError

__all__ = ["ObjectRunDir", "lease_holder", "run_dir_at"]

_RUN_JSON = "run.json"
_RESULTS = "results/"
_LEASE = ".lease"
_PARTS_STAGED = "parts_staged"
_RETIRED = "parts_retired"


def run_dir_at(out: str | os.PathLike[str]) -> RunDir:
    """The run directory ``out`` names: an :class:`ObjectRunDir` for an ``s3://`` URL, a local
    :class:`RunDir` for a path or a ``file://`` URL."""
    if not is_url(out):
        return RunDir(out)
    store, _, key = split_url(os.fspath(out))
    return RunDir(key) if store == "file" else ObjectRunDir(os.fspath(out))


def lease_holder(run_dir: RunDir) -> int | None:
    """The pid of the driver writing in ``run_dir`` (0 when on another host), or None when
    none holds a live lease; for a local run directory see
    :func:`~batchjudge.engine.checkpoint.lock_holder`."""
    if not isinstance(run_dir, ObjectRunDir):
        from batchjudge.engine.checkpoint import lock_holder

        return lock_holder(run_dir.path)
    return run_dir.holder()


class ObjectRunDir(RunDir):
    """A run directory at an ``s3://`` URL (see the module docstring)."""

    def __init__(self, url: str) -> None:
        super().__init__(".")
        store, bucket, key = split_url(url)
        if store != "s3":
            raise ConfigError(f"{url}: a run directory in {store}:// is not supported yet; use a local --out or "
                              "an s3:// one (any S3-compatible store)")
        self.path = ObjectPath(f"s3://{bucket}/{key}")  # type: ignore[assignment]
        self._store = S3Store(url, bucket)
        self._prefix = f"{key}/" if key else ""
        self._etag: str | None = None
        """The ETag of ``run.json`` as this driver first read it or last wrote it (None:
        absent): every write is conditional on it, so a record another driver changed in
        between is never overwritten."""
        self._etag_known = False
        self._hidden: set[str] = set()
        """Parts ``run.json`` names as staged or retired by an unfinished rewrite
        (:meth:`drop_rows`): never this run's results, removed by the next :meth:`open`."""
        self._lease: Lease | None = None

    def _url(self, name: str) -> ObjectPath:
        return ObjectPath(self.path) / name

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Take the run's lease (CheckpointError naming the holder when it is live)."""
        lease = Lease(self._store, self._prefix + _LEASE, str(self.path))
        lease.acquire()
        self._lease, self.took_over, self._next_part = lease, lease.took_over, None
        try:
            self._finish_rewrite()
        except BaseException:
            self.close()
            raise

    def _finish_rewrite(self) -> None:
        """Settle a rewrite (:meth:`drop_rows`) a crash interrupted: remove the parts it
        staged or retired, and their names from ``run.json``."""
        meta = self._read_json()
        if meta is None or not (meta.get(_PARTS_STAGED) or meta.get(_RETIRED)):
            return
        for name in sorted(self._hidden):
            self._store.delete(self._prefix + _RESULTS + name, "remove an interrupted rewrite's parts")
        self._store_meta({k: v for k, v in meta.items() if k not in (_PARTS_STAGED, _RETIRED)})
        self._hidden = set()
        self._ledger = None  # read again, settled

    def close(self) -> None:
        """Release the lease."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            lease.release()

    def _check_owner(self) -> None:
        if self._lease is not None:
            self._lease.check()

    def holder(self) -> int | None:
        """The pid of the driver holding a live lease on this run (0: unreadable), else None."""
        held = read_lease(self._store, self._prefix + _LEASE)
        if held is None:
            return None
        pid = held.get("pid")
        return pid if isinstance(pid, int) else 0

    def last_write(self) -> float | None:
        """When ``run.json`` or the newest part was last written (None: neither exists)."""
        keys = [self._prefix + _RUN_JSON, *(p.key for p in self.parts()[-1:] if isinstance(p, ObjectPart))]
        times = [t for t in (self._store.modified(k, "read when the run last wrote") for k in keys) if t is not None]
        return max(times, default=None)

    def reset(self, also: Iterable[str] = ()) -> None:
        """Start over: remove ``run.json``, every part and the folders named in ``also``."""
        self._check_owner()
        for part in self.parts():
            assert isinstance(part, ObjectPart)
            self._store.delete(part.key, "remove the earlier results")
        for name in also:
            for key in self._store.keys(f"{self._prefix}{name}/", "remove the earlier results"):
                self._store.delete(key, "remove the earlier results")
        self._store.delete(self._prefix + _RUN_JSON, "remove the earlier results")
        self._etag, self._etag_known, self._hidden = None, True, set()
        super()._forget()

    # -- run.json ----------------------------------------------------------------------
    def _fetch_meta(self) -> bytes | None:
        got = self._store.get(self._prefix + _RUN_JSON, "read the run's record")
        if self._etag_known:
            return None if got is None else got[0]
        self._etag, self._etag_known = (None if got is None else got[1]), True
        if got is None:
            return None
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
            meta = orjson.loads(got[0])
            self._hidden = {*(meta.get(_PARTS_STAGED) or {}), *(meta.get(_RETIRED) or {})}
        return got[0]

    def _store_meta(self, data: Mapping[str, Any]) -> None:
        body = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        try:
            self._etag = self._store.put(self._prefix + _RUN_JSON, body, "write the run's record (run.json)",
                                         if_match=self._etag)
            self._etag_known = True
        except Conflict as exc:
            raise CheckpointError(
                f"{self._url(_RUN_JSON)}: changed by another driver while this run wrote (it took the run over), "
                "so this run stops; what it committed is kept: run the same command again once that one is done"
            ) from exc

    # -- result parts ------------------------------------------------------------------
    def parts(self) -> Sequence[PartFile]:
        """The parts present, in write order (CheckpointError naming any other object in results/)."""
        prefix = self._prefix + _RESULTS
        keys = self._store.keys(prefix, "list the results")
        names = [key[len(prefix):] for key in keys]
        foreign = [n for n in names if not PART.fullmatch(n) and not n.startswith(".")]
        if foreign:
            raise CheckpointError(
                f"{self._url('results')}: {listed(foreign)} not written by batchjudge (only part-NNNNNN.parquet "
                "objects belong here); move them out of results/, then run the same command again"
            )
        found = [ObjectPart(self._url(_RESULTS + n), prefix + n, self._store) for n in names
                 if PART.fullmatch(n) and n not in self._hidden]
        return sorted(found, key=part_number)

    def _commit_part(self, name: str, table: pa.Table, run_id: str) -> tuple[PartFile, str]:
        data, digest = encode_part(table, run_id)
        return self._put_part(name, data.to_pybytes()), digest

    def _put_part(self, name: str, data: bytes) -> PartFile:
        """Create the part ``name`` (never over another's)."""
        key = self._prefix + _RESULTS + name
        try:
            self._store.put(key, data, "write a results part")
        except Conflict as exc:
            raise CheckpointError(f"{self._url(_RESULTS + name)}: written by another driver while this run wrote, "
                                  "so this run stops; run the same command again once that one is done") from exc
        return ObjectPart(self._url(_RESULTS + name), key, self._store)

    def drop_rows(self, drop: Callable[[pa.Table], np.ndarray], without: str) -> int:
        """Rewrite the parts that hold rows ``drop`` selects, without them (see
        :meth:`RunDir.drop_rows`); return how many were dropped.

        With no rename, the swap is three records: the new parts' names and digests are
        recorded as staged (``parts_staged``) before they are written; then ``run.json``
        switches to them in one compare-and-swap, naming the parts they replace as retired
        (``parts_retired``); then those are deleted and the record cleared. A crash before the
        switch leaves the old set (the staged parts are removed by the next :meth:`open`), one
        after it the new set (the retired parts removed); readers meanwhile never see both.
        """
        parts = self.verified_parts()
        ledger = self._settled()
        assert ledger.run_id is not None
        self._check_owner()
        number = 1 + max([ledger.highest(), *(part_number(p) for p in parts)])
        staged: dict[str, tuple[bytes, str]] = {}
        retired: dict[str, str] = {}
        dropped = 0
        for part in parts:
            table = conform(read_part(part))
            kept = table.filter(pa.array(~np.asarray(drop(table), dtype=bool)))
            if kept.num_rows == table.num_rows:
                continue
            dropped += table.num_rows - kept.num_rows
            retired[part.name] = ledger.parts[part.name]
            if kept.num_rows:
                data, digest = encode_part(kept, ledger.run_id)
                staged[f"part-{number:06d}.parquet"] = (data.to_pybytes(), digest)
                number += 1
        if not dropped:
            return 0
        ledger.staged = {name: digest for name, (_, digest) in staged.items()}
        self._rewrite_meta()  # staged: the old set stands until the switch
        for name, (data, _) in staged.items():
            self._put_part(name, data)
        ledger.parts = {n: d for n, d in ledger.parts.items() if n not in retired} | ledger.staged
        ledger.staged = {}
        self._hidden = set(retired)
        switched = {k: v for k, v in (self._read_json() or {}).items() if k != _PARTS_STAGED}
        self.write_meta({**switched, _RETIRED: retired})  # the switch
        for name in retired:
            self._store.delete(self._prefix + _RESULTS + name, f"remove the results with {without}")
        self._hidden = set()
        self.write_meta({k: v for k, v in (self._read_json() or {}).items() if k != _RETIRED})
        self._next_part = None
        return dropped
