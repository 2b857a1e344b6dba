"""The tracer protocol: where finished rows go besides the results (Weave, JSON lines).

The engine receives a tracer and never imports a concrete one (they live in
:mod:`batchjudge.adapters.tracing`); whoever starts a run chooses it and closes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from batchjudge.core.results import FinishedRow

__all__ = ["Tracer"]


class Tracer(Protocol):
    """A sink for traces. ``submit`` must return at once and never raise."""

    def submit(self, row: FinishedRow) -> None: ...

    async def aclose(self, summary: Mapping[str, Any] | None = None) -> dict[str, int]:
        """Drain, log the run's ``summary`` metrics, close; return counters
        (``sent``, ``dropped``, ``errors``)."""
        ...
