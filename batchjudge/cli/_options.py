"""Option declarations shared by the commands.

Typer prints a boolean option's type as ``<bool>``, which reads as "takes a value": people
wrote ``--overwrite true``, and ``true`` became an input path. Every boolean option is
therefore a ``--name/--no-name`` pair with the type column left empty, so the help shows
``--overwrite  --no-overwrite  ... [default: no-overwrite]``.
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["flag"]


def flag(name: str, help: str, *short: str) -> Any:
    """A ``--name/--no-name`` switch (plus ``short`` aliases such as ``-q``) for ``Annotated``."""
    return typer.Option(f"--{name}/--no-{name}", *short, help=help, metavar="")
