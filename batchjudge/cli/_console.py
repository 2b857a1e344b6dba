"""Where every command writes: one place for the error line and its exit code."""

from __future__ import annotations

from functools import cache

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["err_console", "fail", "out_console"]

err_console = Console(stderr=True)
"""Progress, warnings and errors go to stderr so stdout stays clean for ``--json``."""


@cache
def out_console() -> Console:
    """Results and summaries for people: stdout."""
    return Console()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear ``error:`` line to stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
