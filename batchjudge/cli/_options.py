"""Option declarations shared by the commands.

Typer prints a boolean option's type as ``<bool>``, which reads as "takes a value": people
wrote ``--overwrite true``, and ``true`` became an input path. Every boolean option is
therefore a ``--name/--no-name`` pair with the type column left empty, so the help shows
``--overwrite  --no-overwrite  ... [default: no-overwrite]``.
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["STORAGE_OPTION", "flag", "name_placeholders", "use_storage_options"]

STORAGE_OPTION: Any = typer.Option(
    "--storage-option", metavar="KEY=VALUE",
    help="How to reach an s3://, gs:// or az:// URL (repeatable), e.g. endpoint_url=http://host:9000; "
         "never stored. Default: the store's own chain (environment, profile, instance role).")


def flag(name: str, help: str, *short: str) -> Any:
    """A ``--name/--no-name`` switch (plus ``short`` aliases such as ``-q``) for ``Annotated``."""
    return typer.Option(f"--{name}/--no-{name}", *short, help=help, metavar="")


_TIME_WORDS = ("second", "timeout", "interval", "after", "every")


def _word(param: Any) -> str:
    """The placeholder a person reads: ``PATH…``, ``N``, ``SECONDS``, ``MODEL``, never a type."""
    name = (param.name or "value").upper()
    kind = param.bare_type().removeprefix("list[").removesuffix("]")  # int, float, Path, str
    if param.param_type_name == "argument":
        word = "PATH" if kind == "Path" or name == "INPUTS" else name
        return f"{word}…" if param.nargs != 1 else word
    if kind == "int":
        return "N"
    if kind == "float":
        return "SECONDS" if any(w in name.lower() for w in _TIME_WORDS) else "NUMBER"
    if kind == "Path":
        return "PATH"
    return name


def name_placeholders(command: Any) -> None:
    """Give every option and argument of ``command`` and its sub-commands a placeholder in words.

    Typer shows an option's Python type (``<list[str]>``, ``<float>``, ``{inputs}...``) where a
    reader wants what to type; switches (``metavar=""``, see :func:`flag`) keep theirs. The help
    option is made lazily by each command, so it is given its empty placeholder when made.
    """
    for param in command.params:
        if param.metavar is None and not getattr(param, "is_flag", False):
            param.metavar = word = _word(param)
            if param.param_type_name == "argument":
                # Typer shows an argument's type beside its name and wraps it in braces in the
                # usage line (``{inputs}...``): the word alone says both.
                param.display_type_rich = lambda ctx: None
                param._usage_display_name = lambda word=word: word
    make_help = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for child in getattr(command, "commands", {}).values():
        name_placeholders(child)


def use_storage_options(specs: list[str] | None) -> dict[str, str] | None:
    """Parse ``--storage-option`` values and use them in this process (their secret values
    registered with the scrubber first); None when none was given. ConfigError on a bad one."""
    if not specs:
        return None
    from batchjudge.engine.stores import parse_storage_options, set_storage_options

    options = parse_storage_options(specs)
    set_storage_options(options)
    return options
