"""``run.json``: what a run directory says about itself.

It holds the run's configuration (never the API key), the fingerprint that guards resumes,
the inputs' content fingerprint (``inputs``), the versions that wrote it, the label-sanity
warnings, and the counts by status, rewritten
atomically after every results part; the server it talks to (``endpoint``: its host, and
whether it said it is the batchjudge emulator), and the ``batchjudge run`` command and folder
that resume it (what ``batchjudge status`` prints). It goes through the scrubber on every
write, like everything else that leaves the process.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from batchjudge.core.results import Counts
from batchjudge.core.scrub import scrub

__all__ = ["RunRecord", "Usage", "now_iso", "package_version"]


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
        data: dict[str, Any] = scrub(asdict(self))
        return data
