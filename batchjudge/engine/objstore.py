"""The commit primitives of a run directory in S3 (or an S3-compatible store), and its lease.

S3 has no rename, so nothing here writes a temporary object and moves it: a part is created
only if absent (``If-None-Match: *``), ``run.json`` is replaced only if it is still the
version this driver read or wrote (``If-Match: ETAG``), and the run's lock is a lease object.
pyarrow's S3 filesystem cannot send these headers, so this module uses boto3 (the optional
extra ``batchjudge[s3]``), the store's reference client.

**The lease** (``.lease`` in the run directory) names its holder (host, pid, the process's
start time) and an expiry :data:`LEASE_SECONDS` ahead; the holder renews it every
:data:`RENEW_SECONDS` with a compare-and-swap on its ETag. Another driver takes it over at once
when its holder is provably gone (same host, and that pid is dead or is another process),
otherwise only once it has expired; the takeover itself is a compare-and-swap, so two
drivers never both win. A holder stops writing when its lease was taken or when it has not
renewed it for :data:`LEASE_SECONDS` minus :data:`SAFETY_SECONDS` (a driver paused that long
could find it expired), and every ``run.json`` write is a compare-and-swap besides: a driver
that lost the run can commit nothing to it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from batchjudge.engine.stores import ObjectPath, s3_endpoint, storage_options, store_error
from batchjudge.errors import BatchJudgeError, CheckpointError, ConfigError

__all__ = ["LEASE_SECONDS", "RENEW_SECONDS", "SAFETY_SECONDS", "Conflict", "Lease", "ObjectPart", "ObjectPath",
           "S3Store"]

LEASE_SECONDS = 60.0
"""How long a lease holds without renewal: how long a driver that died on another host (or
whose host cannot be checked) keeps the run from a new driver."""
RENEW_SECONDS = 15.0
"""How often the holder renews its lease (four chances before it expires)."""
SAFETY_SECONDS = 15.0
"""A holder writes only while its last renewal is this much younger than the lease: slack for
clocks and a slow request."""


class Conflict(Exception):
    """A conditional write was refused: the object exists, or is not the version expected."""


class S3Store:
    """One bucket, through boto3: get, list, delete, and the two conditional writes."""

    def __init__(self, url: str, bucket: str) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise ConfigError(f"{url}: a run directory in S3 needs boto3: pip install 'batchjudge[s3]'") from exc
        self.url, self.bucket = url, bucket
        options = storage_options()
        session = boto3.session.Session(profile_name=options.get("profile"))
        self._client: Any = session.client(
            "s3", endpoint_url=s3_endpoint(), region_name=options.get("region"),
            aws_access_key_id=options.get("access_key_id"), aws_secret_access_key=options.get("secret_access_key"),
            aws_session_token=options.get("session_token"),
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60))
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors: tuple[type[BaseException], ...] = (BotoCoreError, ClientError)

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _code(self, exc: BaseException) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def _fail(self, exc: BaseException, key: str, doing: str) -> BatchJudgeError:
        return store_error(self._url(key), exc, doing, missing=ConfigError)

    def get(self, key: str, doing: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when there is none."""
        try:
            reply = self._client.get_object(Bucket=self.bucket, Key=key)
            return reply["Body"].read(), str(reply["ETag"])
        except self._errors as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._fail(exc, key, doing) from exc

    def put(self, key: str, data: bytes, doing: str, *, if_match: str | None = None) -> str:
        """Write ``data`` only if ``key`` is absent (``if_match`` None) or still has ETag
        ``if_match``; return the new ETag. Conflict when the store refuses the condition."""
        condition = {"IfNoneMatch": "*"} if if_match is None else {"IfMatch": if_match}
        try:
            reply = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **condition)
        except self._errors as exc:
            if self._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise Conflict(key) from exc
            raise self._fail(exc, key, doing) from exc
        return str(reply["ETag"])

    def keys(self, prefix: str, doing: str) -> list[str]:
        """Every key under ``prefix``."""
        found: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found += [item["Key"] for item in page.get("Contents", [])]
        except self._errors as exc:
            raise self._fail(exc, prefix, doing) from exc
        return found

    def modified(self, key: str, doing: str) -> float | None:
        """When ``key`` was last written (seconds since the epoch), or None when it is absent."""
        try:
            return float(self._client.head_object(Bucket=self.bucket, Key=key)["LastModified"].timestamp())
        except self._errors as exc:
            if self._code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._fail(exc, key, doing) from exc

    def delete(self, key: str, doing: str) -> None:
        """Remove ``key`` (no error when it is gone already)."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except self._errors as exc:
            raise self._fail(exc, key, doing) from exc


@dataclass(frozen=True, slots=True)
class ObjectPart:
    """A results part in the store: what :func:`~batchjudge.engine.parts.read_part` reads."""

    url: ObjectPath
    key: str
    store: S3Store

    @property
    def name(self) -> str:
        """``part-NNNNNN.parquet``."""
        return self.url.name

    def read_bytes(self) -> bytes:
        """The part's bytes (CheckpointError when it vanished since it was listed)."""
        got = self.store.get(self.key, "read a results part")
        if got is None:
            raise CheckpointError(f"{self.url}: deleted while it was read; run the same command again")
        return got[0]

    def __str__(self) -> str:
        return str(self.url)


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from ``/proc``), or None
    where it cannot be read: with the pid, it names one process, not a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_space() -> str | None:
    """This boot of this kernel and this process's pid namespace: two containers that share
    a host name (host networking) differ here, so a pid is only compared within one space."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


def _me() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid_space": _pid_space(), "pid": pid, "started": _started(pid),
            "token": uuid.uuid4().hex}


def holder_gone(holder: dict[str, Any]) -> bool:
    """Whether ``holder`` (a lease's) is provably gone: it ran on this host, in this pid
    namespace, and its pid is dead or now another process (its start time differs)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if holder.get("pid_space") != _pid_space():
        return False
    if not _alive(pid):
        return True
    started = holder.get("started")
    return started is not None and _started(pid) not in (None, started)


class Lease:
    """The run's lease, held and renewed by a background thread until :meth:`release`."""

    def __init__(self, store: S3Store, key: str, url: str) -> None:
        self._store, self._key, self._url = store, key, url
        self._me = _me()
        self._etag: str | None = None
        self._renewed = 0.0
        self._lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.took_over: str | None = None
        """Set when this lease was taken from another driver: how, for the run's warnings."""

    def _body(self) -> bytes:
        return orjson.dumps({**self._me, "expires": time.time() + LEASE_SECONDS, "seconds": LEASE_SECONDS})

    def acquire(self) -> None:
        """Take the lease, or CheckpointError naming who holds it and until when."""
        now = time.monotonic()
        current = self._store.get(self._key, "read the run's lease")
        try:
            if current is None:
                self._etag = self._store.put(self._key, self._body(), "take the run's lease")
            else:
                held = _parse(current[0])
                holder = _who(held)
                expires = held.get("expires")
                left = float(expires) - time.time() if isinstance(expires, (int, float)) else 0.0
                expired = left <= 0
                if not (expired or holder_gone(held)):
                    raise CheckpointError(
                        f"{self._url}: another batchjudge run is writing here ({holder}, its lease runs "
                        f"{int(left)} s more and is renewed while it runs); "
                        f"wait for it, or if it died on another machine, run again after its lease expires "
                        f"(at most {int(LEASE_SECONDS)} s)")
                self._etag = self._store.put(self._key, self._body(), "take the run's lease", if_match=current[1])
                self.took_over = (f"took over the run's lease from {holder}: "
                                  + ("its lease had expired" if expired else "that process is gone"))
        except Conflict as exc:
            raise CheckpointError(f"{self._url}: another batchjudge run took the lease at the same moment; "
                                  "it is writing here") from exc
        self._renewed = now
        self._thread = threading.Thread(target=self._renew_loop, name="batchjudge-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            now = time.monotonic()
            try:
                self._etag = self._store.put(self._key, self._body(), "renew the run's lease", if_match=self._etag)
                self._renewed = now
            except Conflict:
                self._lost = True
                return
            except BatchJudgeError:
                continue  # the store is unreachable for now: the writes stop once the lease is too old

    def check(self) -> None:
        """CheckpointError when this driver may no longer write (lease taken, or too old)."""
        if self._lost:
            raise CheckpointError(f"{self._url}: another driver took this run's lease, so this run stops "
                                  "(what it committed is kept); run the same command again once it is done")
        if time.monotonic() - self._renewed > LEASE_SECONDS - SAFETY_SECONDS:
            raise CheckpointError(f"{self._url}: this run could not renew its lease for "
                                  f"{int(LEASE_SECONDS - SAFETY_SECONDS)} s (the store unreachable?), so it stops "
                                  "before another driver could take over; run the same command again")

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still this driver's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._lost or self._etag is None:
            return
        current = self._store.get(self._key, "release the run's lease")
        if current is not None and _parse(current[0]).get("token") == self._me["token"]:
            self._store.delete(self._key, "release the run's lease")
        self._etag = None


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _who(held: dict[str, Any]) -> str:
    return f"pid {held.get('pid', '?')} on {held.get('host', '?')}"


def read_lease(store: S3Store, key: str) -> dict[str, Any] | None:
    """The lease as stored, when it is live (unexpired, and its holder not provably gone)."""
    current = store.get(key, "read the run's lease")
    if current is None:
        return None
    held = _parse(current[0])
    expires = held.get("expires")
    if not isinstance(expires, (int, float)) or expires <= time.time() or holder_gone(held):
        return None
    return held
