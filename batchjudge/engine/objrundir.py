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

Not yet supported here (a ConfigError says so): ``--retry-failed`` and
``--allow-changed-inputs`` (their rewrite of the parts needs a staged swap), ``--mode batch``
(its job files) and run directories in ``gs://`` and ``az://``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from batchjudge.engine.checkpoint import RunDir
from batchjudge.engine.objstore import Conflict, Lease, ObjectPart, ObjectPath, S3Store, read_lease
from batchjudge.engine.parts import PART, PartFile, encode_part, listed, part_number
from batchjudge.engine.stores import is_url, split_url
from batchjudge.errors import CheckpointError, ConfigError

__all__ = ["ObjectRunDir", "lease_holder", "run_dir_at"]

_RUN_JSON = "run.json"
_RESULTS = "results/"
_LEASE = ".lease"


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
        """The ETag of ``run.json`` as this driver last read or wrote it (None: absent)."""
        self._lease: Lease | None = None

    def _url(self, name: str) -> ObjectPath:
        return ObjectPath(self.path) / name

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Take the run's lease (CheckpointError naming the holder when it is live)."""
        lease = Lease(self._store, self._prefix + _LEASE, str(self.path))
        lease.acquire()
        self._lease, self.took_over, self._next_part = lease, lease.took_over, None

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
        self._etag = None
        super()._forget()

    # -- run.json ----------------------------------------------------------------------
    def _fetch_meta(self) -> bytes | None:
        got = self._store.get(self._prefix + _RUN_JSON, "read the run's record")
        if got is None:
            self._etag = None
            return None
        data, self._etag = got
        return data

    def _store_meta(self, data: Mapping[str, Any]) -> None:
        body = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        try:
            self._etag = self._store.put(self._prefix + _RUN_JSON, body, "write the run's record (run.json)",
                                         if_match=self._etag)
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
        found = [ObjectPart(self._url(_RESULTS + n), prefix + n, self._store) for n in names if PART.fullmatch(n)]
        return sorted(found, key=part_number)

    def _commit_part(self, name: str, table: pa.Table, run_id: str) -> tuple[PartFile, str]:
        data, digest = encode_part(table, run_id)
        key = self._prefix + _RESULTS + name
        try:
            self._store.put(key, data.to_pybytes(), "write a results part")
        except Conflict as exc:
            raise CheckpointError(f"{self._url(_RESULTS + name)}: written by another driver while this run wrote, "
                                  "so this run stops; run the same command again once that one is done") from exc
        return ObjectPart(self._url(_RESULTS + name), key, self._store), digest

    def drop_rows(self, drop: Callable[[pa.Table], np.ndarray], without: str) -> int:
        """Not supported in an object store yet (see the module docstring)."""
        raise ConfigError(f"{self.path}: a run directory in object storage cannot drop {without} yet "
                          "(--retry-failed, --allow-changed-inputs); copy it to a local --out to do so")
