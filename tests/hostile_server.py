"""A small Mistral-compatible server that misbehaves on purpose, for the trust tests.

It answers ``POST /v1/chat/completions`` like the API (a verdict of 1, usage), except that a
``script`` decides per request what to do instead: echo the request's headers (API key
included) into an error body or a reply, answer 429 with a huge ``Retry-After``, send a 10 MB
body. It can also go away: :meth:`HostileServer.outage` closes the listening socket and every
open connection for some seconds (new connections are refused), then listens again on the
same port. It counts the replies it answered with 200, so a test can compare them with the
rows a client wrote. It runs on aiohttp in a background thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

__all__ = ["BODY", "HostileServer", "Reply", "chat_reply", "dead_url", "echo_headers", "wait_for"]

BODY = web.RequestKey("body", str)
"""Where a chat request's body (as text) is kept for the script: ``request[BODY]``."""

Reply = Callable[[web.Request, int], "web.StreamResponse | Awaitable[web.StreamResponse] | None"]
"""``(request, n)`` → a response (or an awaitable one, to stream) for the n-th chat request
(from 0), or None to answer normally; ``request[BODY]`` holds the request body as text."""


def chat_reply(content: str = '{"consistency": 1, "reason": "supported"}') -> web.Response:
    """A chat completion carrying ``content``."""
    body = {
        "id": "cmpl-hostile", "object": "chat.completion", "model": "mistral-small-latest", "created": int(time.time()),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    return web.json_response(body)


def echo_headers(status: int, shape: str) -> Reply:
    """Error replies of ``status`` whose body repeats the request's headers, in one of the
    shapes servers use: ``json-message`` (inside ``message``), ``json-raw`` (the headers as a
    JSON object, no message), ``text`` (plain ``Name: value`` lines), ``detail`` (FastAPI-style
    validation details)."""

    def reply(request: web.Request, n: int) -> web.StreamResponse:
        headers = dict(request.headers)
        lines = "\n".join(f"{k}: {v}" for k, v in headers.items())
        if shape == "json-message":
            return web.json_response({"message": f"rejected request with headers {headers!r}"}, status=status)
        if shape == "json-raw":
            return web.json_response({"object": "error", "request": {"headers": headers}}, status=status)
        if shape == "detail":
            detail = [{"loc": ["header", k], "msg": f"unexpected value {v}", "type": "value_error"} for k, v in headers.items()]
            return web.json_response({"detail": detail}, status=status)
        return web.Response(text=f"Bad request\n{lines}", status=status, content_type="text/plain")

    return reply


def dead_url() -> str:
    """A loopback URL on which nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class HostileServer:
    """See the module docstring. ``script(request, n)`` may return a response to send instead
    of the normal one; ``latency`` (seconds) delays every chat reply; ``host`` is the address
    to listen on (``url`` always names loopback)."""

    def __init__(self, script: Reply | None = None, *, latency: float = 0.0, host: str = "127.0.0.1") -> None:
        self.script = script
        self.host = host
        self.latency = latency
        self.requests = 0
        self.answered = 0
        """Chat requests answered with 200."""
        self.refused_for = 0.0
        with socket.socket() as sock:
            sock.bind((host, 0))
            self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="hostile-server")
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        n = self.requests
        self.requests += 1
        request[BODY] = (await request.read()).decode("utf-8", "replace")
        if self.latency:
            await asyncio.sleep(self.latency)
        special = self.script(request, n) if self.script is not None else None
        if inspect.isawaitable(special):
            special = await special
        if special is not None:
            return special
        self.answered += 1
        return chat_reply()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._listen()

    async def _outage(self, seconds: float) -> None:
        assert self._runner is not None and self._site is not None
        await self._site.stop()
        server = self._runner.server
        if server is not None:
            for handler in list(server.connections):
                handler.force_close()
        await asyncio.sleep(seconds)
        await self._listen()

    def _call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> HostileServer:
        self._thread.start()
        self._call(self._start())
        return self

    def outage(self, seconds: float) -> None:
        """From now on, refuse connections for ``seconds`` (returns at once)."""
        self.refused_for += seconds
        asyncio.run_coroutine_threadsafe(self._outage(seconds), self._loop)

    def stop(self) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``condition`` every 20 ms until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
