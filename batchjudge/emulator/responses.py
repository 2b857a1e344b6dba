"""Small response helpers shared by the emulator's routes: orjson bodies, API-style errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["error", "json", "read_json"]


def json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response encoded with orjson (the emulator's hot path)."""
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")


def error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error in the hosted API's shape: ``{"object": "error", "message", "type", ...}``."""
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": str(status)}
    return json(body, status, headers)


async def read_json(request: Request) -> Any:
    """The request's JSON body, or ``None`` when it is not JSON."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
