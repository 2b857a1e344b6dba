"""An in-process Weave trace server, so the real Weave client runs with no account or network.

It implements the part of Weave's trace-server interface that a traced run uses (objects,
tables, files, calls) and answers like the real server. Tests read the requests it keeps
(exactly what would be sent to W&B); the tracing benchmark points the out-of-process sink at
it (``{"client_factory": "batchjudge.adapters.tracing._recording:counting_client"}``) to
measure Weave's real client-side cost. It is a test double, never a place to store traces.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from weave.trace.weave_client import WeaveClient
    from weave.trace_server_bindings.models import EnsureProjectExistsRes
    from weave.vendor.weave_server_sdk.types import (
        CallStartResponse,
        FileCreateResponse,
        ObjectCreateResponse,
        TableCreateResponse,
    )

__all__ = ["RecordingTraceServer", "client_for", "counting_client"]


def _digest(value: Any) -> str:
    encoded = orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).hexdigest()


class RecordingTraceServer:
    """Answers Weave's client in memory; keeps every request when ``keep`` is true, else only
    counts them by kind (``counts``)."""

    def __init__(self, *, keep: bool = True) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.counts: dict[str, int] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def _record(self, name: str, req: dict[str, Any]) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            if self._keep:
                self.requests.append((name, req))

    def get_feedback_processor(self) -> None:
        return None

    def get_call_processor(self) -> None:
        return None

    def ensure_project_exists(
        self, entity: str, project: str
    ) -> EnsureProjectExistsRes:
        from weave.trace_server_bindings.models import EnsureProjectExistsRes

        return EnsureProjectExistsRes(project_name=project)

    def obj_create(self, req: dict[str, Any]) -> ObjectCreateResponse:
        from weave.vendor.weave_server_sdk.types import ObjectCreateResponse

        self._record("obj_create", req)
        return ObjectCreateResponse(
            digest=req["obj"].get("expected_digest") or _digest(req)
        )

    def file_create(self, req: dict[str, Any]) -> FileCreateResponse:
        from weave.vendor.weave_server_sdk.types import FileCreateResponse

        self._record("file_create", req)
        return FileCreateResponse(digest=req.get("expected_digest") or _digest(req))

    def table_create(self, req: dict[str, Any]) -> TableCreateResponse:
        from weave.vendor.weave_server_sdk.types import TableCreateResponse

        self._record("table_create", req)
        table = req["table"]
        return TableCreateResponse(
            digest=table.get("expected_digest") or _digest(req),
            row_digests=[_digest(r) for r in table["rows"]],
        )

    def call_start(self, req: dict[str, Any]) -> CallStartResponse:
        from weave.vendor.weave_server_sdk.types import CallStartResponse

        self._record("call_start", req)
        start = req["start"]
        return CallStartResponse(
            id=start.get("id") or str(uuid.uuid4()),
            trace_id=start.get("trace_id") or str(uuid.uuid4()),
        )

    def call_end(self, req: dict[str, Any]) -> dict[str, Any]:
        self._record("call_end", req)
        return {}


def client_for(server: RecordingTraceServer, project: str) -> WeaveClient:
    """A Weave client for ``ENTITY/PROJECT`` on ``server``, made the active client as
    ``weave.init`` would."""
    from weave.trace.context import weave_client_context
    from weave.trace.weave_client import WeaveClient

    entity, _, name = project.partition("/")
    client = WeaveClient(entity, name, server, ensure_project_exists=False)  # type: ignore[arg-type]
    weave_client_context.set_weave_client_global(client)
    return client


def counting_client(project: str) -> WeaveClient:
    """A client factory (in place of ``weave.init``) on a server that only counts requests."""
    return client_for(RecordingTraceServer(keep=False), project)
