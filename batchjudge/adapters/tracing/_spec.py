"""Parse a ``--trace`` target: ``weave:ENTITY/PROJECT`` or ``local:DIR``."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from batchjudge.errors import ConfigError

__all__ = ["TraceTarget", "parse_trace_spec"]


@dataclass(frozen=True, slots=True)
class TraceTarget:
    """Where traces go: a Weave project (``ENTITY/PROJECT``) or a local directory."""

    kind: Literal["weave", "local"]
    location: str

    @property
    def directory(self) -> Path:
        """The local directory (only meaningful for ``kind == "local"``)."""
        return Path(self.location)


def parse_trace_spec(spec: str) -> TraceTarget:
    """Validate ``spec`` and return its target; raise :class:`ConfigError` when it cannot work.

    A local directory is created at once, and Weave must be importable, so that a bad target
    stops the run before anything is sent rather than silently losing every trace.
    """
    kind, sep, location = spec.partition(":")
    if not sep or not location:
        raise ConfigError(
            f"--trace {spec!r}: expected 'weave:ENTITY/PROJECT' or 'local:DIR'"
        )
    if kind == "local":
        try:
            Path(location).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"--trace {spec!r}: cannot create directory {location!r}: {exc.strerror}"
            ) from exc
        return TraceTarget("local", location)
    if kind == "weave":
        entity, slash, project = location.partition("/")
        if not slash or not entity or not project or "/" in project:
            raise ConfigError(
                f"--trace {spec!r}: a Weave target is 'weave:ENTITY/PROJECT'"
            )
        if importlib.util.find_spec("weave") is None:
            raise ConfigError(
                "--trace weave:...: weave is not installed (pip install 'batchjudge[weave]')"
            )
        return TraceTarget("weave", location)
    raise ConfigError(
        f"--trace {spec!r}: unknown target {kind!r}; use 'weave:ENTITY/PROJECT' or 'local:DIR'"
    )
