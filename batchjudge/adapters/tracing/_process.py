"""Run a sink in a child process (``_child``), fed through a pipe by the tracer's worker."""

from __future__ import annotations

import re
import select
import subprocess
import sys
import tempfile
from typing import IO, Any

from batchjudge.core.scrub import Scrubber, scrubbed_logger
from ._wire import read_frame, write_frame

__all__ = ["ProcessSink"]

logger = scrubbed_logger(__name__)

_STDERR_TAIL = 2000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""Terminal colour and cursor codes (Weave colours its log lines): dropped from the log."""


class ProcessSink:
    """A :class:`~._sink.Sink` whose work happens in ``python -m ...tracing._child``.

    ``write`` only forwards the batch (the pipe applies backpressure to the worker thread,
    never to the engine); the child reports at ``finish`` how many records it failed on. A
    child that dies or does not answer within ``finish_timeout`` seconds is killed, and
    everything forwarded to it counts as failed. The child's stderr is kept in a temporary
    file and its tail logged (scrubbed) when something went wrong.
    """

    def __init__(
        self, config: dict[str, Any], *, finish_timeout: float, scrub: Scrubber
    ) -> None:
        self._config = config
        self._finish_timeout = finish_timeout
        self._scrub = scrub
        self._forwarded = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def open(self) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives until finish()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "batchjudge.adapters.tracing._child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            # Its own session: no terminal to prompt on, and a Ctrl-C stops the run, which
            # then closes the child cleanly instead of killing it mid-write.
            start_new_session=True,
        )
        write_frame(self._stdin(), {"op": "open", "config": self._config})

    def write(self, records: list[dict[str, Any]]) -> int:
        write_frame(self._stdin(), {"op": "write", "records": records})
        self._forwarded += len(records)
        return 0

    def finish(self, evaluation: dict[str, Any]) -> int:
        process = self._process
        if process is None or process.stdout is None:
            raise RuntimeError("trace process is not running")
        try:
            write_frame(self._stdin(), {"op": "finish", "evaluation": evaluation})
            ready, _, _ = select.select([process.stdout], [], [], self._finish_timeout)
            reply = read_frame(process.stdout) if ready else None
        except (OSError, EOFError):  # the child died
            reply = None
        finally:
            self._stop(process)
        try:
            if reply is None:
                self._log_stderr("the trace process did not answer")
                return self._forwarded + 1
            if reply["error"]:
                self._log_stderr(str(reply["error"]))
            failed: int = reply["failed"]
            return failed
        finally:
            if self._stderr is not None:
                self._stderr.close()

    def _stdin(self) -> IO[bytes]:
        if self._process is None or self._process.stdin is None:
            raise RuntimeError("trace process is not running")
        return self._process.stdin

    def _stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def _log_stderr(self, reason: str) -> None:
        tail = b""
        if self._stderr is not None:
            self._stderr.seek(0, 2)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            tail = self._stderr.read()
        logger.warning(
            "tracing: %s; trace process stderr: %s",
            self._scrub(reason),
            self._scrub(_ANSI.sub("", tail.decode("utf-8", "replace"))),
        )
