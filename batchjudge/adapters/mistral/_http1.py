"""A lean HTTP/1.1 client for the one request a run makes thousands of times: chat completions.

Keep-alive connections, one request at a time on each, replies parsed by ``httptools`` (the
``llhttp`` parser uvicorn uses), TLS by the standard library with certificate verification.
Why not ``aiohttp`` here: on the 2-core dev machine, paced against a server answering in
300±150 ms, ``aiohttp`` alone spent 0.60-1.02 ms of CPU a request at 100 a second and
0.42-0.43 ms at 400, and this client 0.39 ms and 0.22-0.32 ms
(``benchmarks/http_client_cpu.py``): at 100 RPS much of the engine's CPU was the HTTP
library's. Files, batch jobs and fine-tuning keep ``aiohttp`` (:mod:`._client`): they are
few, and need multipart uploads and streamed downloads.

Failures are the package's, worded by :mod:`._failures` as for every transport: no connection
made (refused, DNS, TLS, no answer within the connect timeout) is
:class:`~batchjudge.errors.UnreachableError`; a connection closed or reset before any reply
byte is :class:`~batchjudge.errors.DisconnectedError`; a reply that breaks off, a malformed
reply or no reply within the timeout is :class:`~batchjudge.errors.TransientError`; a reply over
the cap is :class:`~batchjudge.errors.ReplyTooLargeError`, and its connection is closed unread.
The moment each request is written is told to the engine (:mod:`batchjudge.core.sending`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from batchjudge.adapters.mistral._failures import cause, connect_timeout, disconnected, no_reply, too_large, unreachable
from batchjudge.core.sending import request_written
from batchjudge.errors import TransientError

__all__ = ["Http1Pool", "HttpReply"]


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A reply as received: status, headers (lower-cased keys) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; :meth:`exchange` sends a request and waits for its reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[HttpReply] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._what = ""
        self._cap: int | None = None
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._started = False
        """Whether any byte of the current reply arrived."""
        self._headers_done = False

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # nothing asked: a stray byte makes the connection unusable
            self.close()
            return
        self._started = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransientError(f"{self._what}: malformed HTTP reply ({' '.join(str(exc).split())[:120]})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        why = cause(exc) if exc is not None else "closed by the server"
        if not self._started:
            self._fail(disconnected(self._what, why))
        elif self._headers_done and not self._delimited():
            self._finish(keep=False)  # a reply delimited by the connection's end
        else:
            self._fail(TransientError(f"{self._what}: connection error: the reply broke off ({why})"))

    # -- httptools callbacks ---------------------------------------------------------
    # Each returns at once when the exchange already ended (a reply over the cap, or bytes
    # after a complete reply in the same read): they must not touch a reply handed over.
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._parser is not None:
            self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._parser is None:
            return
        self._headers_done = True
        length = self._headers.get("content-length")
        if self._cap is not None and length is not None and length.isdigit() and int(length) > self._cap:
            self._fail(too_large(self._what, self._cap, int(length)))

    def on_body(self, body: bytes) -> None:
        if self._parser is None:
            return
        self._body += body
        if self._cap is not None and len(self._body) > self._cap:
            self._fail(too_large(self._what, self._cap))

    def on_message_complete(self) -> None:
        parser = self._parser
        if parser is not None:
            self._finish(keep=parser.should_keep_alive())

    # -- one exchange ----------------------------------------------------------------
    def exchange(self, request: bytes, *, what: str, cap: int | None) -> asyncio.Future[HttpReply]:
        """Write ``request`` (head and body) and return the future of its reply."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._what, self._cap = what, cap
        self._headers, self._body = {}, bytearray()
        self._started = self._headers_done = False
        self.transport.write(request)
        return self._waiter

    def _delimited(self) -> bool:
        return "content-length" in self._headers or "chunked" in self._headers.get("transfer-encoding", "").lower()

    def _finish(self, *, keep: bool) -> None:
        waiter, parser = self._waiter, self._parser
        self._parser = None
        if not keep:
            self.close()
        if waiter is not None and not waiter.done() and parser is not None:
            waiter.set_result(HttpReply(parser.get_status_code(), self._headers, bytes(self._body)))

    def _fail(self, error: Exception) -> None:
        """End the exchange with ``error``; the connection, in an unknown state, is closed."""
        self._parser = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()

    @property
    def usable(self) -> bool:
        """Open for another exchange: not closed by us or the server, nor closing (a transport
        that failed a write closes before :meth:`connection_lost` is called)."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Http1Pool:
    """Keep-alive connections to one server (``base_url``), made on demand and reused.

    Connections belong to the event loop that made them: a pool used from a new loop (a
    second ``asyncio.run``) forgets the old ones. ``headers`` go with every request.
    """

    def __init__(
        self, base_url: str, headers: Mapping[str, str], *, timeout: float, connect_timeout: float
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")
        # TLS set up with the client, not at its first request: a paced request must leave on time.
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host = parts.netloc.rpartition("@")[2]  # as in the URL (an IPv6 literal keeps its brackets)
        lines = [f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
        self._common = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self.timeout = timeout
        self.connect_timeout = min(timeout, connect_timeout)
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def request(
        self, method: str, path: str, body: bytes, *, content_type: str, what: str, cap: int | None
    ) -> HttpReply:
        """Send one request and return its reply; failures as the module docstring says."""
        head = (
            f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._common
            + f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode("latin-1")
        )
        try:
            async with asyncio.timeout(self.timeout):
                connection, new = await self._take(what)
                self._busy.add(connection)
                try:
                    reply = connection.exchange(head + body, what=what, cap=cap)
                    request_written(new)
                    result = await reply
                except BaseException:
                    connection.close()  # timed out, cancelled or failed: its state is unknown
                    raise
                finally:
                    self._busy.discard(connection)
        except TimeoutError:
            raise no_reply(what, self.timeout) from None
        if not connection.closed:
            self._idle.append(connection)
        return result

    async def _take(self, what: str) -> tuple[_Connection, bool]:
        """An idle open connection (the most recently used), or a new one."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._idle.clear()  # another loop's, unusable here
            self._busy.clear()
            self._loop = loop
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection, False
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )  # fmt: skip
        except TimeoutError:
            raise connect_timeout(what, self.base_url, self.connect_timeout) from None
        except OSError as exc:  # refused, DNS, TLS verification
            raise unreachable(what, self.base_url, cause(exc)) from None
        return protocol, True

    def close(self) -> None:
        """Close every connection of the current loop (those of another loop are dropped)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            for connection in (*self._idle, *self._busy):
                connection.close()
        self._idle.clear()
        self._busy.clear()
