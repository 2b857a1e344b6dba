"""The contract between the tracer's worker and a trace destination."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

__all__ = ["Sink", "UnavailableSink", "encode_json"]


class Sink(Protocol):
    """A trace destination, driven by one worker thread: ``open``, ``write``..., ``finish``.

    Every method may raise; the tracer counts the failure and carries on, so a sink never
    needs to protect the run itself.
    """

    def open(self) -> None:
        """Connect or create files; called once, on the worker, before the first write."""
        ...

    def write(self, records: list[dict[str, Any]]) -> int:
        """Write a batch of ``call`` records; return how many failed (raise: all failed)."""
        ...

    def finish(self, evaluation: dict[str, Any]) -> int:
        """Write the ``evaluation`` record, flush and close. Return how many records failed
        after ``write`` accepted them, the evaluation included (0 for a synchronous sink)."""
        ...


class UnavailableSink:
    """A destination known to be unreachable before the run starts (no W&B login, say):
    every record fails at once and is counted, with no process, connection or prompt tried.
    Whoever chooses it says why, once."""

    def open(self) -> None:
        """Nothing to open."""

    def write(self, records: list[dict[str, Any]]) -> int:
        return len(records)

    def finish(self, evaluation: dict[str, Any]) -> int:
        return 1


def encode_json(value: Any) -> bytes:
    """One compact JSON document, tolerant of numpy scalars and other stray types."""
    return orjson.dumps(
        value,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
        default=str,
    )
