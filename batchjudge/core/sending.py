"""When a request really left: a hook a transport calls the moment its headers are written.

A strict server counts a rate window by arrival. The engine's pacer records a send when it
lets the request go, but the request can leave later: a new connection must be opened first
(every request of a run's first second), or the event loop was busy. Those late requests
then arrive bunched with the ones paced a second after them, and the server refuses one (the
first-second 429 of a run at a known limit). A transport that can tell when the request's
headers were written calls :data:`on_request_written` then; the engine sets it around each
send (a context variable, so it reaches the transport through the task that sends, without
a parameter in every provider) and moves the send's place in its windows to that moment.
A request that opened a new connection is counted a guard later than it was written
(``NEW_CONNECTION_GUARD_S`` in :mod:`batchjudge.engine.limits`): the server accepts the
connection before it reads the request, and a run opens most of its connections in its first
second. Transports that cannot tell (the official SDK) leave the pacer's time as the send
time.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["on_request_written", "request_written"]

on_request_written: ContextVar[Callable[[bool], None] | None] = ContextVar("batchjudge_on_request_written",
                                                                           default=None)
"""Set by the engine around one send; called once the request is written, with whether it
opened a new connection for that."""


def request_written(new_connection: bool) -> None:
    """Tell the engine, if it asked, that the current task's request was just written."""
    hook = on_request_written.get()
    if hook is not None:
        hook(new_connection)
