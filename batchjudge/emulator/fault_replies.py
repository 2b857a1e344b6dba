"""The replies an injected fault sends instead of the answer (kinds in :mod:`.faults`)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from batchjudge.emulator import responses
from batchjudge.emulator.dialects import Dialect

__all__ = ["HUGE_BODY_BYTES", "dropped", "echo", "hold", "huge", "malformed", "nonjson"]

HUGE_BODY_BYTES = 10 * 1024 * 1024
"""About how large a ``huge`` reply is."""
_NON_JSON_BODY = b"<html><body><h1>502 Bad Gateway</h1>(emulated proxy page)</body></html>"
_HUGE_UNIT = "Consistent. "
_ECHO_STATUSES: tuple[tuple[int, bool], ...] = (
    (400, False),
    (401, False),
    (422, False),
    (500, False),
    (400, True),
)
"""The ``echo`` fault's replies in turn: (status, plain text)."""


class _Dropped(Response):
    """Starts a reply and stops mid-body, so the server closes the connection under it."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})


def dropped() -> Response:
    """``drop``: the connection closes in the middle of a 200."""
    return _Dropped()


async def hold(request: Request, seconds: float) -> None:
    """``slow``: wait ``seconds`` or until the client hangs up, whichever comes first."""
    try:
        async with asyncio.timeout(seconds):
            while not await request.is_disconnected():
                await asyncio.sleep(0.05)
    except TimeoutError:
        return


def nonjson(headers: Mapping[str, str]) -> Response:
    """``nonjson``: 200 with a proxy's HTML page."""
    return Response(_NON_JSON_BODY, 200, headers, media_type="text/html")


def malformed(model: str, headers: Mapping[str, str]) -> Response:
    """``malformed``: 200 with a completion whose message has no content."""
    broken = {
        "id": "malformed",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}}],
    }
    return responses.json(broken, 200, headers)


@functools.lru_cache(maxsize=2)  # 10 MB each
def _huge_body(model: str, prompt_tokens: int, unit_tokens: int) -> bytes:
    repeats = HUGE_BODY_BYTES // len(_HUGE_UNIT)
    payload = {
        "id": "huge",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _HUGE_UNIT * repeats},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": unit_tokens * repeats,
            "total_tokens": prompt_tokens + unit_tokens * repeats,
        },
    }
    return orjson.dumps(payload)


def huge(
    model: str, prompt_tokens: int, count: Callable[[str], int], headers: Mapping[str, str]
) -> Response:
    """``huge``: 200 with a valid chat completion of about 10 MB (built once per model).

    Its completion tokens are the repeated sentence's count times the repeats (``count``
    measures the sentence), close to what tokenising the whole content would give.
    """
    body = _huge_body(model, prompt_tokens, count(_HUGE_UNIT))
    return Response(body, 200, headers, media_type="application/json")


def echo(
    request: Request, turn: int, dialect: Dialect, headers: Mapping[str, str]
) -> Response:
    """``echo``: an error whose body repeats the request's headers, ``Authorization`` included.

    The ``turn``-th echo (from 0) plays 400, 401, 422, 500 and a plain-text 400 in turn. The
    body is what a careless server or proxy sends back; it exists so tests can prove a client
    never writes such a body (and the key in it) to a log, a file or the screen.
    """
    status, plain = _ECHO_STATUSES[turn % len(_ECHO_STATUSES)]
    seen: dict[str, Any] = dict(request.headers.items())
    if plain:
        lines = [f"{status} Bad Request", *(f"{k}: {v}" for k, v in seen.items())]
        return Response("\n".join(lines) + "\n", status, headers, media_type="text/plain")
    message = f"emulated fault {status}; the request was {orjson.dumps(seen).decode()}"
    reply = dialect.error(status, message, "emulated_fault", headers)
    body: dict[str, Any] = orjson.loads(reply.body)
    body["request_headers"] = seen
    return responses.json(body, status, headers)
