"""Length-prefixed JSON frames between the tracer and its out-of-process sink."""

from __future__ import annotations

import struct
from typing import IO, Any

import orjson

from ._sink import encode_json

__all__ = ["read_frame", "write_frame"]

_HEADER = struct.Struct(">I")


def write_frame(stream: IO[bytes], message: dict[str, Any]) -> None:
    """Write one message and flush."""
    payload = encode_json(message)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    """Read one message; ``None`` at a clean end of stream."""
    header = stream.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise EOFError("truncated frame header")
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("truncated frame")
    message: dict[str, Any] = orjson.loads(payload)
    return message
