"""``run.json``: what a run directory says about itself.

It holds the run's configuration (never the API key), the fingerprint that guards resumes,
the inputs' content fingerprint (``inputs``), the versions that wrote it, the label-sanity
warnings, and the counts by status, rewritten
atomically after every results part; the server it talks to (``endpoint``: its host, and
whether it said it is the batchjudge emulator), and the ``batchjudge run`` command and folder
that resume it (what ``batchjudge status`` prints). It goes through the scrubber on every
write, like everything else that leaves the process.

Its key ``schema_version`` (:data:`RUN_SCHEMA_VERSION`), says which layout it has. A
reader accepts every version up to its own (a ``run.json`` without one was written by a
release before versions were recorded: version 0, read as it always was) and refuses a higher
one, saying to upgrade (:func:`check_schema_version`), rather than misread it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from batchjudge.core.results import Counts
from batchjudge.core.scrub import scrub
from batchjudge.errors import CheckpointError

__all__ = ["RUN_SCHEMA_VERSION", "RunRecord", "Usage", "check_schema_version", "now_iso", "package_version"]

RUN_SCHEMA_VERSION = 1
"""The layout of ``run.json`` this code writes and reads at most. Bumped when a key is removed
or renamed, or a kept key changes meaning or type, so that an older batchjudge would misread
the file; a new key that older readers can ignore (as ``input_rows``) is no bump. Version 1:
the first recorded (``run_id``, ``parts``, ``inputs``, ``input_rows``); 0: no version key."""


def check_schema_version(meta: dict[str, Any], path: object) -> None:
    """CheckpointError, one line, when ``meta`` (a ``run.json`` read from ``path``) was written
    by a newer batchjudge than this one reads; a missing version is an older release's (0)."""
    version = meta.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise CheckpointError(f"{path}: schema_version {version!r} is not a version number; "
                              "this run.json was not written by batchjudge")
    if version > RUN_SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer batchjudge (run.json schema_version {version}; this one, "
            f"{package_version()}, reads up to {RUN_SCHEMA_VERSION}): upgrade it (pip install -U batchjudge)")


class Usage(TypedDict):
    """Tokens a run has used over all its sessions, as the replies reported them."""

    prompt: int
    completion: int


def now_iso() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def package_version() -> str:
    """batchjudge's installed version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("batchjudge")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _no_counts() -> Counts:
    return Counts(ok=0, parse_error=0, failed=0, done=0, total=0)


def _no_usage() -> Usage:
    return Usage(prompt=0, completion=0)


@dataclass(slots=True)
class RunRecord:
    """The content of ``run.json``."""

    config: dict[str, Any]
    fingerprint: dict[str, Any]
    created_at: str = field(default_factory=now_iso)
    sessions: int = 1
    labelled: bool = False
    warnings: list[str] = field(default_factory=list)
    counts: Counts = field(default_factory=_no_counts)
    tokens: Usage = field(default_factory=_no_usage)
    limits: str = ""
    """The pace the run last worked at and where each limit came from (flag, server, estimate)."""
    updated_at: str = field(default_factory=now_iso)
    batchjudge_version: str = field(default_factory=package_version)
    python: str = field(default_factory=platform.python_version)
    endpoint: dict[str, Any] = field(default_factory=dict)
    """``{"host": "api.mistral.ai", "emulator": false}``; the host is None for the local judge
    and provider objects, ``emulator`` turns true once a reply says it came from the emulator."""
    command: list[str] | None = None
    """The ``batchjudge run`` command that resumes the run (None for a provider object)."""
    cwd: str = field(default_factory=os.getcwd)
    """The folder the run was started from: where ``command``'s relative paths lead."""
    inputs: dict[str, Any] | None = None
    """What the run read from each input, as a content fingerprint that a resume compares
    (:mod:`batchjudge.engine.inputs`); None before the first pass over the inputs."""
    input_rows: int | None = None
    """Rows of the inputs, whatever ``--limit`` (``counts.total`` is the rows the run covers):
    a run stopped at ``--limit`` says so (``batchjudge status``). None before the first pass."""

    @classmethod
    def resumed(cls, stored: dict[str, Any] | None, config: dict[str, Any], fingerprint: dict[str, Any]) -> RunRecord:
        """The record of a new session: created_at, the session count, the tokens spent and
        whether the emulator answered carried over."""
        record = cls(config=config, fingerprint=fingerprint)
        record.endpoint = {"host": fingerprint.get("endpoint"), "emulator": False}
        if stored is not None:
            record.created_at = str(stored.get("created_at") or record.created_at)
            record.sessions = int(stored.get("sessions") or 0) + 1
            earlier = stored.get("endpoint")
            record.endpoint["emulator"] = isinstance(earlier, dict) and earlier.get("emulator") is True
            tokens = stored.get("tokens")
            if isinstance(tokens, dict):
                record.tokens = Usage(prompt=int(tokens.get("prompt") or 0),
                                      completion=int(tokens.get("completion") or 0))
        return record

    def to_json(self) -> dict[str, Any]:
        """The scrubbed dict written to ``run.json``."""
        data: dict[str, Any] = scrub({"schema_version": RUN_SCHEMA_VERSION, **asdict(self)})
        return data
