"""``local:DIR``: the trace as JSON lines, one file per run, fully offline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any

from ._sink import encode_json

__all__ = ["JsonlSink", "trace_file_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def trace_file_name(run_name: str) -> str:
    """``<run_name>.jsonl`` with anything unsafe in a file name replaced by ``_``."""
    return f"{_UNSAFE.sub('_', run_name).strip('._') or 'run'}.jsonl"


class JsonlSink:
    """Appends records to ``DIR/<run_name>.jsonl``, one JSON object per line.

    The file is opened for appending, so a resumed run adds the rows it judges (and its own
    closing ``evaluation`` record) to the same file. Each batch is written and flushed at
    once, so the file is current whenever the tracer's queue is empty.
    """

    def __init__(self, directory: Path, run_name: str) -> None:
        self.path = directory / trace_file_name(run_name)
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")

    def write(self, records: list[dict[str, Any]]) -> int:
        self._append(records)
        return 0

    def finish(self, evaluation: dict[str, Any]) -> int:
        try:
            self._append([evaluation])
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
        return 0

    def _append(self, records: list[dict[str, Any]]) -> None:
        if self._file is None:
            raise RuntimeError(f"trace file {self.path} is not open")
        self._file.write(b"".join(encode_json(r) + b"\n" for r in records))
        self._file.flush()
