"""Serving the emulator over real HTTP: in the foreground (the CLI) or in a background thread.

uvicorn runs the app (httptools and uvloop when installed) through an HTTP protocol that resets
connections during an outage (:mod:`batchjudge.emulator.outage`). The socket is bound before
serving so a caller knows the port even when it asked for port 0.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import orjson
import uvicorn

from batchjudge.emulator.app import create_app
from batchjudge.emulator.config import EmulatorConfig
from batchjudge.emulator.outage import protocol_class

__all__ = ["EmulatorServer", "bind", "serve"]

_START_TIMEOUT_S = 30.0


class _QuietDrops(logging.Filter):
    """Hide uvicorn's complaint about the replies the ``drop`` fault cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(config: EmulatorConfig, log_level: str, **app_kwargs: Any) -> uvicorn.Server:
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    app = create_app(config, **app_kwargs)
    uv_config = uvicorn.Config(
        app,
        http=protocol_class(app.state.emulator.outage),
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
        backlog=2048,
    )
    return uvicorn.Server(uv_config)


def serve(config: EmulatorConfig, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve on ``sock`` until interrupted (Ctrl-C / SIGTERM)."""
    _server(config, log_level).run(sockets=[sock])


class EmulatorServer:
    """An emulator on a free local port in a background thread; a context manager.

    >>> with EmulatorServer(EmulatorConfig(rps=50)) as emu:  # doctest: +SKIP
    ...     emu.url  # 'http://127.0.0.1:PORT'
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", **app_kwargs: Any
    ) -> None:
        self.config = config or EmulatorConfig()
        self._sock = bind(host, 0)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = _server(self.config, "error", **app_kwargs)
        self._thread = threading.Thread(target=self._run, name="batchjudge-emulator", daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give a client (``--base-url``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def app(self) -> Any:
        """The ASGI app (its ``state.emulator`` holds the live counters and stores)."""
        return self._server.config.app

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> Self:
        """Start serving and wait until the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def stats(self) -> dict[str, Any]:
        """A snapshot of ``/stats`` (read directly, no HTTP round trip)."""
        snapshot: dict[str, Any] = orjson.loads(orjson.dumps(self.app.state.emulator.snapshot()))
        return snapshot

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
