"""The files API: upload (multipart, as the SDK sends it), list, retrieve, download, delete."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchjudge.emulator import responses
from batchjudge.emulator.state import EmulatorState

__all__ = ["routes"]

_SAMPLE_TYPE_BY_PURPOSE = {"batch": "batch_request", "fine-tune": "instruct"}


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def upload(request: Request) -> Response:
    """``POST /v1/files``: a multipart form with ``file`` and optional ``purpose``."""
    async with request.form() as form:  # closes the upload's spooled temporary file
        file = form.get("file")
        if not isinstance(file, UploadFile):
            return responses.error(422, "field required: file (multipart upload)")
        purpose = str(form.get("purpose") or "fine-tune")
        content = await file.read()
    sample_type = _SAMPLE_TYPE_BY_PURPOSE.get(purpose, "instruct")
    stored = _state(request).add_file(
        file.filename or "upload.jsonl", purpose, content, sample_type
    )
    return responses.json(stored.describe())


async def list_files(request: Request) -> Response:
    """``GET /v1/files``."""
    files = [f.describe() for f in _state(request).files.values()]
    return responses.json({"object": "list", "data": files, "total": len(files)})


def _lookup(request: Request) -> tuple[EmulatorState, str]:
    return _state(request), request.path_params["file_id"]


async def retrieve(request: Request) -> Response:
    """``GET /v1/files/{file_id}``."""
    state, file_id = _lookup(request)
    stored = state.files.get(file_id)
    if stored is None:
        return responses.error(404, f"file {file_id} not found", kind="not_found")
    return responses.json(stored.describe())


async def download(request: Request) -> Response:
    """``GET /v1/files/{file_id}/content``: the raw bytes."""
    state, file_id = _lookup(request)
    stored = state.files.get(file_id)
    if stored is None:
        return responses.error(404, f"file {file_id} not found", kind="not_found")
    return Response(stored.content, media_type="application/octet-stream")


async def delete(request: Request) -> Response:
    """``DELETE /v1/files/{file_id}``."""
    state, file_id = _lookup(request)
    if state.files.pop(file_id, None) is None:
        return responses.error(404, f"file {file_id} not found", kind="not_found")
    return responses.json({"id": file_id, "object": "file", "deleted": True})


def routes() -> list[Route]:
    """The files API's routes."""
    return [
        Route("/v1/files", upload, methods=["POST"]),
        Route("/v1/files", list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", retrieve, methods=["GET"]),
        Route("/v1/files/{file_id}", delete, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", download, methods=["GET"]),
    ]
