"""MkDocs hook: the CLI reference is the CLI's own ``--help``, rendered when the site is built.

A page line ``<!-- cli-help: data synth -->`` becomes the output of ``batchjudge data synth
--help`` in a text block, so the reference cannot drift from the code.
"""

from __future__ import annotations

import re
from typing import Any

_MARKER = re.compile(r"^<!-- cli-help: ?(?P<command>[a-z ]*?) ?-->$", re.M)


def _help(command: str) -> str:
    from typer.testing import CliRunner

    from batchjudge.cli import app

    args = [*command.split(), "--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    if result.exit_code != 0:
        raise RuntimeError(f"batchjudge {' '.join(args)} exited {result.exit_code}: {result.output}")
    title = f"batchjudge {command}".strip()
    return f"`{title} --help`\n\n```text\n{result.output.rstrip()}\n```"


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _MARKER.sub(lambda m: _help(m["command"]), markdown)
