"""Outages: spells during which the server answers nothing and resets every connection.

An outage is scheduled with ``--outage AT:FOR`` (it starts AT seconds after the first request
the emulator counts and lasts FOR seconds) or started on demand with ``POST /admin/outage``
(``{"seconds": FOR}``, starting at once). While it lasts, a new connection is reset as soon as
it is accepted and a request arriving on an open (keep-alive) connection resets that
connection, so a client sees a connection error (reset, or the server disconnecting), never an
HTTP status. Replies already being prepared when an outage starts are still sent.

The reset happens below the ASGI app, in uvicorn's HTTP protocol (:func:`protocol_class`):
an outage needs a real socket, so the in-process (ASGI transport) app has none.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from batchjudge.errors import ConfigError

__all__ = ["Outage", "parse_outage", "protocol_class"]

_LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: closing the socket sends a TCP reset instead of a graceful close."""


def parse_outage(text: str) -> tuple[float, float]:
    """``AT:FOR`` in seconds → ``(at, for)``; ConfigError naming ``--outage`` if unreadable."""
    at_text, sep, for_text = text.partition(":")
    try:
        at, span = float(at_text), float(for_text)
    except ValueError:
        at = span = -1.0
    if not sep or not (0 <= at < float("inf")) or not (0 < span < float("inf")):
        raise ConfigError(
            f"--outage: {text!r} is not AT:FOR (seconds after the first request, then how long)"
        )
    return at, span


class Outage:
    """When the server is down; checked by the protocol on every connection and request."""

    def __init__(
        self, schedule: tuple[float, float] | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._schedule = schedule
        self._clock = clock
        self._start = float("inf")
        self._end = float("-inf")
        self.resets = 0
        """Connections reset because they came during an outage."""

    def first_request(self) -> None:
        """Start the scheduled outage's clock (called on every counted request; once matters)."""
        if self._schedule is not None:
            at, span = self._schedule
            self._schedule = None
            self._begin(self._clock() + at, span)

    def start_now(self, seconds: float) -> None:
        """Begin an outage now, lasting ``seconds`` (the admin endpoint)."""
        self._begin(self._clock(), seconds)

    def _begin(self, start: float, seconds: float) -> None:
        self._start, self._end = start, start + seconds

    def active(self) -> bool:
        """Whether the server is down right now."""
        return self._start <= self._clock() < self._end

    def describe(self) -> dict[str, Any]:
        """For ``/stats``: the last outage's bounds (seconds from now) and the resets so far."""
        now = self._clock()
        known = self._end > float("-inf")
        return {
            "active": self.active(),
            "starts_in_s": round(self._start - now, 3) if known else None,
            "ends_in_s": round(self._end - now, 3) if known else None,
            "resets": self.resets,
        }

    def reset(self, transport: asyncio.Transport) -> None:
        """Reset a connection (TCP RST) and count it."""
        self.resets += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:
                pass
        transport.abort()


def protocol_class(outage: Outage) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools or h11), resetting connections during ``outage``."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class OutageAwareProtocol(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            if outage.active():
                outage.reset(transport)

        def data_received(self, data: bytes) -> None:
            if outage.active():
                outage.reset(self.transport)
                return
            super().data_received(data)

    return OutageAwareProtocol
