"""The ``batchjudge`` command: thin wrappers that parse options, call the API, render.

Each sub-command lives in its own module with a ``register(app)`` function; this module
only assembles them. Library code never prints: rendering happens here and in the modules.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

# pyarrow's default mimalloc pool keeps freed Parquet pages resident: streaming 100k rows of
# long documents measured 194 MiB peak RSS with it and 126 MiB with the system allocator. The
# CLI owns its process, so it picks the allocator before pyarrow is first imported; a user's
# own setting wins. Likewise polars' jemalloc (used by the label-sanity pass before a run) is
# told to hand freed pages back at once instead of holding them for the rest of the run:
# together they keep a 100k-row run under 300 MiB (benchmarks/scale_memory.py).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

import typer
from typer._click import exceptions as click_errors
from typer.core import TyperGroup

from batchjudge.cli._options import name_placeholders

__all__ = ["app", "main"]


class _Group(TyperGroup):
    """The root command: once typer has built the tree, every placeholder is put in words; a
    usage error is one line (:meth:`main`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name_placeholders(self)

    def main(
        self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any,
    ) -> Any:
        """Run the command; a usage error (an unknown option, a value out of range, a missing
        argument) is one ``error:`` line naming the option and where the help is, exit 2, like
        every other error the CLI shows, instead of click's usage block and boxed message.

        Click's standalone mode is kept (every outcome ends in ``sys.exit``); only how its
        errors are shown differs (typer vendors click, hence ``typer._click``)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            returned = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()  # the help itself
            sys.exit(exc.exit_code)
        except click_errors.UsageError as exc:
            from batchjudge.cli._console import fail

            where = exc.ctx.command_path if exc.ctx is not None else "batchjudge"
            sys.exit(fail(f"{exc.format_message().rstrip('.')} (see '{where} -h')", exc.exit_code).exit_code)
        except click_errors.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        sys.exit(returned if isinstance(returned, int) else 0)


app = typer.Typer(
    name="batchjudge",
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Async, rate-limited, resumable batch evaluation of LLM judges on the Mistral API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    """``--version``: the installed distribution's version, then exit before any command."""
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"batchjudge {version('batchjudge')}")
        except PackageNotFoundError:  # pragma: no cover - a source tree, not installed
            typer.echo("batchjudge (not installed: no version recorded)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_print_version, is_eager=True, metavar="",
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Judge (document, summary) pairs at scale; see each command's --help."""


# One line per sub-command module; each defines ``register(app: typer.Typer) -> None``.
_COMMAND_MODULES: tuple[str, ...] = (
    "batchjudge.cli.run",
    "batchjudge.cli.emulator",
    "batchjudge.cli.data",
    "batchjudge.cli.report",
    "batchjudge.cli.status",
    "batchjudge.cli.ft",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _show_library_warnings() -> None:
    """Library code logs (never prints); the CLI shows its warnings, e.g. why tracing failed
    or that the endpoint is unreachable, scrubbed like everything else it shows."""
    import logging

    from rich.logging import RichHandler

    from batchjudge.cli._console import SCRUB_FILTER, err_console

    handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    handler.addFilter(SCRUB_FILTER)
    logger = logging.getLogger("batchjudge")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def main() -> None:
    """Console-script entry point."""
    _show_library_warnings()
    app()
