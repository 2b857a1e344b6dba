"""Where trained local judges live: ``$BATCHJUDGE_HOME/models`` (default ``~/.cache/batchjudge``).

A model is one JSON file; its name (``ft:local-judge:fib:abc123``) is percent-encoded into a
safe, reversible file name, so any name maps to exactly one file inside the directory and
never to a path outside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote

from batchjudge.errors import ConfigError

__all__ = ["DEFAULT_MODEL", "list_models", "model_path", "models_dir"]

DEFAULT_MODEL = "local-judge"
"""The shipped model's name; it cannot be shadowed by a registered one."""

_SUFFIX = ".json"
_MAX_NAME = 200


def models_dir() -> Path:
    """``$BATCHJUDGE_HOME/models``, or ``~/.cache/batchjudge/models`` when unset."""
    home = os.environ.get("BATCHJUDGE_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "batchjudge"
    return base / "models"


def model_path(name: str) -> Path:
    """The file that holds the registered model ``name`` (which need not exist yet)."""
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise ConfigError(f"invalid local judge model name {name!r}")
    return models_dir() / (quote(name, safe="") + _SUFFIX)


def list_models() -> list[str]:
    """Every model name ``LocalJudge.load`` accepts: the shipped one, then registered ones."""
    folder = models_dir()
    registered = (
        sorted(unquote(p.name[: -len(_SUFFIX)]) for p in folder.glob("*" + _SUFFIX))
        if folder.is_dir()
        else []
    )
    return [DEFAULT_MODEL, *(n for n in registered if n != DEFAULT_MODEL)]
