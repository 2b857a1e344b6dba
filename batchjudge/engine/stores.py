"""Where inputs and run directories live: local paths, or object-storage URLs.

An input or ``--out`` that starts with ``s3://``, ``gs://`` (``gcs://``), ``az://``
(``abfs://``) or ``file://`` is a URL; anything else is a local path, handled as before.
Inputs are read through pyarrow's filesystems (:func:`input_filesystem`); a run directory in
``s3://`` is written through boto3 (:mod:`batchjudge.engine.objstore`), because pyarrow's S3
filesystem cannot send the conditional writes (``If-None-Match``/``If-Match``) its commits
need.

**Credentials and endpoints** come from each store's standard chain (the environment,
including ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` for S3-compatible stores, a profile,
an instance role), or from ``--storage-option KEY=VALUE`` (:func:`set_storage_options`).
Options live in this process only: never in ``run.json``, and every value that may be a
credential is registered with the scrubber, so it is replaced wherever it would be shown.

**Errors** (:func:`store_error`) are one line naming the URL: a missing bucket or object is
the user's to fix (``InputError``/``ConfigError``, exit 2); a refusal (access denied, bad
credentials) or an unreachable store is the environment's (``StorageError``, exit 1).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from batchjudge.core.scrub import remember_secret, scrub_text
from batchjudge.errors import BatchJudgeError, ConfigError, InputError, StorageError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = [
    "ObjectPath",
    "S3_OPTIONS",
    "is_url",
    "input_filesystem",
    "parse_storage_options",
    "s3_endpoint",
    "set_storage_options",
    "split_url",
    "storage_options",
    "store_error",
]

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.S)
_SCHEMES = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfs": "az", "abfss": "az", "file": "file"}
"""The URL schemes understood, and the store each names."""

S3_OPTIONS = ("endpoint_url", "region", "access_key_id", "secret_access_key", "session_token", "profile")
"""The ``--storage-option`` keys for ``s3://`` (the others' keys go to pyarrow's GCS/Azure
filesystem as keyword arguments, unchecked)."""
_NOT_SECRET = frozenset({"endpoint_url", "region", "profile", "anonymous", "scheme"})
"""Option keys whose values are not credentials (every other value is registered as a secret)."""

_options: dict[str, str] = {}


class ObjectPath(str):
    """A URL in a store that reads like a ``Path`` in messages: ``url / "run.json"``."""

    __slots__ = ()

    def __truediv__(self, name: str) -> ObjectPath:
        return ObjectPath(f"{self.rstrip('/')}/{name}")

    @property
    def name(self) -> str:
        """The last segment."""
        return self.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        """The last segment's extension (``.parquet``), as ``Path.suffix``."""
        name = self.name
        return name[name.rfind("."):] if "." in name.lstrip(".") else ""


def is_url(value: str | os.PathLike[str]) -> bool:
    """Whether ``value`` is a storage URL (``s3://``...), not a local path."""
    match = _URL.match(os.fspath(value))
    return match is not None and match["scheme"].lower() in _SCHEMES


def split_url(url: str) -> tuple[str, str, str]:
    """``(store, bucket, key)`` of ``url``: ``("s3", "b", "runs/x")`` for ``s3://b/runs/x/``;
    for ``file://`` the bucket is empty and the key the absolute path."""
    match = _URL.match(url)
    if match is None or match["scheme"].lower() not in _SCHEMES:
        raise ConfigError(f"{url}: not a storage URL (s3://, gs://, az:// or file://)")
    store, rest = _SCHEMES[match["scheme"].lower()], match["rest"]
    if store == "file":
        return store, "", "/" + rest.lstrip("/")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigError(f"{url}: no bucket named; write {store}://BUCKET/PATH")
    return store, bucket, key.strip("/")


def parse_storage_options(specs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--storage-option``, repeatable) as a dict; ConfigError naming
    a malformed one (its value never shown: it may be a secret)."""
    options: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--storage-option {key or '?'}: expected KEY=VALUE (e.g. endpoint_url=http://host:9000)")
        options[key] = value
    return options


def set_storage_options(options: Mapping[str, str]) -> None:
    """Use ``options`` for every store this process reaches, and register each value that may
    be a credential with the scrubber. Replaces earlier options."""
    for key, value in options.items():
        if key not in _NOT_SECRET:
            remember_secret(value)
    _options.clear()
    _options.update(options)


def storage_options() -> dict[str, str]:
    """The options :func:`set_storage_options` set (a copy)."""
    return dict(_options)


def s3_endpoint() -> str | None:
    """The S3 endpoint: ``endpoint_url`` from the options, else ``AWS_ENDPOINT_URL_S3``, else
    ``AWS_ENDPOINT_URL`` (None: AWS itself)."""
    return _options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _s3_filesystem() -> pafs.FileSystem:
    import pyarrow.fs as pafs

    unknown = sorted(set(_options) - set(S3_OPTIONS))
    if unknown:
        raise ConfigError(f"--storage-option {unknown[0]}: not an s3:// option (use {', '.join(S3_OPTIONS)})")
    endpoint = s3_endpoint()
    kwargs: dict[str, str] = {}
    if endpoint:
        scheme, sep, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host.rstrip("/") if sep else endpoint, scheme=scheme if sep else "https")
    for ours, theirs in (("region", "region"), ("access_key_id", "access_key"),
                         ("secret_access_key", "secret_key"), ("session_token", "session_token")):
        if ours in _options:
            kwargs[theirs] = _options[ours]
    if "profile" in _options:
        os.environ["AWS_PROFILE"] = _options["profile"]
    return pafs.S3FileSystem(**kwargs)


def input_filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem that reads ``url``, and the path within it."""
    import pyarrow.fs as pafs

    store, bucket, key = split_url(url)
    try:
        if store == "file":
            return pafs.LocalFileSystem(), key
        if store == "s3":
            fs = _s3_filesystem()
        elif store == "gs":
            fs = pafs.GcsFileSystem(**_options)
        else:
            fs = pafs.AzureFileSystem(**_options)
    except TypeError as exc:  # an option the filesystem does not take
        raise ConfigError(f"{url}: a --storage-option is not one {store}:// takes ({_first(exc)})") from exc
    except (OSError, ValueError, ImportError) as exc:
        raise store_error(url, exc, "reach the store") from exc
    return fs, f"{bucket}/{key}".rstrip("/")


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return scrub_text(lines[0] if lines else type(exc).__name__)[:200]


_MISSING = ("nosuchbucket", "bucket does not exist", "bucket_not_found", "no such bucket", "containernotfound",
            "the specified bucket does not exist")
_DENIED = ("accessdenied", "access denied", "access_denied", "forbidden", "invalidaccesskeyid", "signaturedoesnotmatch",
           "invalid_access_key", "signature_does_not_match", "403", "authorization")
_UNREACHABLE = ("could not connect", "connection refused", "endpoint", "timed out", "timeout", "name resolution",
                "couldn't connect", "network_connection", "curl")


def store_error(url: str, exc: BaseException, doing: str, *, missing: type[BatchJudgeError] = InputError) -> BatchJudgeError:
    """The one-line error for ``exc`` met while ``doing`` something at ``url``: ``missing``
    (exit 2) for a bucket that does not exist, StorageError (exit 1) for a refusal or an
    unreachable store, StorageError for anything else the store said. The cause is scrubbed."""
    cause = _first(exc)
    low = cause.lower()
    if "unable to locate credentials" in low or "no credentials" in low:
        return StorageError(f"{url}: cannot {doing}: no credentials found; give them through the environment "
                            "(AWS_ACCESS_KEY_ID...), a profile, an instance role or --storage-option", path=url)
    if any(m in low for m in _MISSING):
        return missing(f"{url}: the bucket does not exist; create it, or fix the URL")
    if any(d in low for d in _DENIED):
        return StorageError(f"{url}: cannot {doing}: access denied ({cause}); check the credentials (environment, "
                            "profile, instance role or --storage-option) and the bucket's permissions", path=url)
    if any(u in low for u in _UNREACHABLE):
        return StorageError(f"{url}: cannot {doing}: the store is unreachable ({cause}); check the endpoint "
                            "(AWS_ENDPOINT_URL_S3, --storage-option endpoint_url) and the network, then run the "
                            "same command again", path=url)
    return StorageError(f"{url}: cannot {doing}: {cause}; fix the cause, then run the same command again", path=url)
