"""Where every command writes: one place for the error line, its exit code, and the scrubber.

Everything the CLI writes goes through the one scrubber (:mod:`batchjudge.core.scrub`): the
two consoles write through :class:`_ScrubbedStream`, so no API key, credential header or URL
password reaches the screen, whatever a server put into a message. Errors are one line
(``error: ...``) with an exit code chosen by the error's class; ``--debug`` adds the
traceback, scrubbed too.
"""

from __future__ import annotations

import os
import sys
import traceback
from functools import cache
from typing import IO, Literal

import typer
from rich.console import Console
from rich.markup import escape

from batchjudge.core.scrub import ScrubFilter, scrub_text
from batchjudge.errors import BatchJudgeError, StorageError

__all__ = ["SCRUB_FILTER", "echo_json", "err_console", "exit_code_for", "fail", "fail_with", "out_console"]

SCRUB_FILTER = ScrubFilter()
"""For the CLI's log handler: every record it shows is scrubbed, whichever logger made it."""


class _ScrubbedStream:
    """A text stream that scrubs each write before passing it to ``sys.stdout`` or
    ``sys.stderr``, looked up at each write (so a test's or a live display's redirection
    applies; a live display's proxy is unwrapped, as rich itself does)."""

    def __init__(self, name: Literal["stdout", "stderr"]) -> None:
        self._name = name

    @property
    def _target(self) -> IO[str]:
        stream: IO[str] = getattr(sys, self._name)
        return getattr(stream, "rich_proxied_file", stream)

    def write(self, text: str) -> int:
        self._target.write(scrub_text(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._target, "encoding", None) or "utf-8"


err_console = Console(file=_ScrubbedStream("stderr"))  # type: ignore[arg-type]
"""Progress, warnings and errors go to stderr so stdout stays clean for ``--json``."""


PIPED_WIDTH = 400
"""Columns assumed when stdout is not a terminal: wide enough for any table row we print."""


@cache
def out_console() -> Console:
    """Results and summaries for people: stdout (made on first use).

    Piped (``| less``, ``> report.txt``) rich would assume 80 columns and cut table cells
    (``ft:local-judge:demo:c2fc…``); there no terminal limits the width, so tables keep their
    full width unless ``COLUMNS`` says otherwise.
    """
    stream = _ScrubbedStream("stdout")
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(file=stream, width=PIPED_WIDTH if piped else None)  # type: ignore[arg-type]


def echo_json(data: object) -> None:
    """``data`` as one indented JSON object on stdout, scrubbed like every other line (a
    console would wrap it, so it is written plainly)."""
    import orjson

    text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()
    typer.echo(scrub_text(text))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear ``error:`` line to stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(scrub_text(message))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def exit_code_for(exc: BaseException) -> int:
    """2 for what the user must change (input, options, a run directory that does not check
    out, a rejected key); 1 for the environment (the disk) and anything unexpected."""
    if isinstance(exc, StorageError):
        return 1
    return 2 if isinstance(exc, BatchJudgeError) else 1


def fail_with(exc: BaseException, *, debug: bool = False) -> typer.Exit:
    """The error line for ``exc`` (with its scrubbed traceback under ``--debug``) and its Exit.

    An error batchjudge raises on purpose is its own message; anything else is named as an
    internal error, with the hint to rerun with ``--debug``.
    """
    if debug:
        text = "".join(traceback.format_exception(exc))
        err_console.print(escape(scrub_text(text)), highlight=False, soft_wrap=True, end="")
    if isinstance(exc, BatchJudgeError):
        message = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None:
        message = f"{exc.filename}: {exc.strerror or exc}"
    else:
        first = (str(exc).strip().splitlines() or [""])[0]
        message = f"internal error: {type(exc).__name__}: {first}" + (
            "" if debug else " (run again with --debug for the traceback)"
        )
    return fail(message, exit_code_for(exc))
