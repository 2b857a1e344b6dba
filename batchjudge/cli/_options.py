"""Option declarations shared by the commands.

Typer prints a boolean option's type as ``<bool>``, which reads as "takes a value": people
wrote ``--overwrite true``, and ``true`` became an input path. Every boolean option is
therefore a ``--name/--no-name`` pair with the type column left empty, so the help shows
``--overwrite  --no-overwrite  ... [default: no-overwrite]``.
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["STORAGE_OPTION", "flag", "use_storage_options"]

STORAGE_OPTION: Any = typer.Option(
    "--storage-option", metavar="KEY=VALUE",
    help="How to reach an s3://, gs:// or az:// URL (repeatable), e.g. endpoint_url=http://host:9000; "
         "never stored. Default: the store's own chain (environment, profile, instance role).")


def flag(name: str, help: str, *short: str) -> Any:
    """A ``--name/--no-name`` switch (plus ``short`` aliases such as ``-q``) for ``Annotated``."""
    return typer.Option(f"--{name}/--no-{name}", *short, help=help, metavar="")


def use_storage_options(specs: list[str] | None) -> dict[str, str] | None:
    """Parse ``--storage-option`` values and use them in this process (their secret values
    registered with the scrubber first); None when none was given. ConfigError on a bad one."""
    if not specs:
        return None
    from batchjudge.engine.stores import parse_storage_options, set_storage_options

    options = parse_storage_options(specs)
    set_storage_options(options)
    return options
