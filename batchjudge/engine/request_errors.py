"""Errors about the request, not the row: stop the run before every row fails the same way.

A misspelled ``--model``, a parameter the server refuses, a model the key has no access to,
a schema the server rejects: the server answers every row with the same 4xx, and judging
2,000 rows only to mark them all ``failed`` (and suggest ``--retry-failed``, which fails the
same way) says nothing. :class:`RequestErrorWatch` is the one rule, consulted at one point,
where the online judge hands over a finished row (:meth:`~batchjudge.engine.judge.OnlineJudge.run`):

    The run stops when the first :data:`FIRST_ROWS` distinct rows to finish all failed with the
    same HTTP 4xx status (not 408 or 429) and the same normalised message, and no row has been
    answered yet.

Normalised: the message is lower-cased, its whitespace collapsed and long hexadecimal tokens
(request ids) replaced, so that two rows' copies of one server message compare equal while a
message naming a row's own figures (``prompt has 9,000 tokens``) does not. Until the rule is
decided (an answer, another kind of failure, or a different message disarms it for good),
the failed rows it watches are held back; they are written as ``failed`` once it is
disarmed or the judge step ends, and never when it stops the run, so nothing is marked
failed and the resume sends them again. While it is undecided, at most :data:`FIRST_ROWS` rows
are judged at once (:meth:`RequestErrorWatch.admit`): a misspelled model costs under
``2 * FIRST_ROWS`` calls (the held rows and those in flight) whatever ``--concurrency``, and a
run that works waits for its first answer (one request's latency) before it opens up to its
full concurrency. The stop is :class:`~batchjudge.engine.retry.StopRun`
with a :class:`~batchjudge.errors.RequestRejectedError` (exit 2) giving the server's reason.
"""

from __future__ import annotations

import re

import anyio

from batchjudge.core.results import STATUS_FAILED, FinishedRow
from batchjudge.errors import RequestRejectedError

__all__ = ["FIRST_ROWS", "RequestErrorWatch", "normalised_error"]

FIRST_ROWS = 8
"""Rows that must all fail alike, before any success, for the run to stop: enough that a
row-specific 4xx (one document too long) does not stop a run, few enough that a misspelled
model costs a handful of calls (plus the requests already in flight) instead of the dataset."""

_STATUS = re.compile(r"^\w+\[(\d{3})\]: ")
"""The ``Kind[status]: `` prefix of a failed row's ``error`` (:func:`~.retry.describe_error`)."""
_REQUEST_ID = re.compile(r"\b[0-9a-f]{16,}\b|\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b")
_NOT_ABOUT_THE_REQUEST = frozenset({408, 429})
"""4xx statuses that say the server was busy or slow, not that the request is wrong."""


def normalised_error(error: str) -> tuple[int, str] | None:
    """``(status, message)`` of a failed row's ``error`` when it is a 4xx about the request
    (``BadRequestError[400]: HTTP 400: Invalid model: x``), else None."""
    found = _STATUS.match(error)
    if found is None:
        return None
    status = int(found.group(1))
    if not 400 <= status < 500 or status in _NOT_ABOUT_THE_REQUEST:
        return None
    message = " ".join(error[found.end():].lower().split())
    return status, _REQUEST_ID.sub("#", message)


class RequestErrorWatch:
    """The rule of the module docstring, fed every row the judge finishes, in turn."""

    def __init__(self, rows: int = FIRST_ROWS) -> None:
        self.rows = rows
        self.armed = True
        """False once the rule can no longer stop the run (an answer, another failure)."""
        self._error: tuple[int, str] | None = None
        self._held: dict[str, FinishedRow] = {}
        self._judging = 0
        self._decided = anyio.Event()

    async def admit(self) -> None:
        """Return once another row may be judged: at once when the rule is decided, else when
        fewer than :attr:`rows` rows are being judged. Pair with :meth:`left`."""
        while self.armed and self._judging >= self.rows:
            await self._decided.wait()
        self._judging += 1

    def left(self) -> None:
        """A row :meth:`admit` let in is no longer being judged (finished, or given up)."""
        self._judging -= 1

    def finished(self, row: FinishedRow) -> list[FinishedRow]:
        """The rows to write now that ``row`` finished (none while it is held back, the held
        ones too once the rule is disarmed); raises RequestRejectedError when the run must stop."""
        if not self.armed:
            return [row]
        result = row.result
        error = normalised_error(result.error or "") if result.status == STATUS_FAILED else None
        if error is None or (self._error is not None and error != self._error):
            return self._disarm(row)
        self._error = error
        self._held[result.row_id] = row
        if len(self._held) >= self.rows:
            reason = _STATUS.sub("", result.error or "", count=1)
            raise RequestRejectedError(
                f"the server refused the request: {reason} (the first {len(self._held)} rows alike, none answered); "
                "fix the option it names (model, parameters, access) and run the command again: nothing was "
                "marked failed", status=error[0])
        return []

    def release(self) -> list[FinishedRow]:
        """The rows still held back when the judge step ends (fewer than the rule needs)."""
        return self._disarm(None)

    def _disarm(self, row: FinishedRow | None) -> list[FinishedRow]:
        self.armed = False
        self._decided.set()
        held = list(self._held.values())
        self._held.clear()
        return held + ([row] if row is not None else [])
