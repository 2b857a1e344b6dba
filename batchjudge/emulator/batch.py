"""Batch inference jobs: create, get, list, cancel; processed in the background.

Input is ``.jsonl`` files of ``{"custom_id", "body"}`` lines (or inline ``requests``); each
body is answered like a chat completion (no rate limit, no faults: batch is the offline
path). Results go to an output file of ``{"id", "custom_id", "response": {"status_code",
"body"}, "error": null}`` lines and failures to an error file of the same shape with an
``error`` object, as documented for the hosted API.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchjudge.emulator import responses
from batchjudge.emulator.chat import ChatError, prepare
from batchjudge.emulator.state import EmulatorState, new_id

__all__ = ["routes"]

_YIELD_EVERY = 32
"""Rows answered between two yields to the event loop (keeps the server responsive)."""


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _input_lines(state: EmulatorState, job: dict[str, Any], inline: list[Any]) -> list[Any]:
    """Every request line of the job, decoded (undecodable lines are kept as ``None``)."""
    lines: list[Any] = list(inline)
    for file_id in job["input_files"]:
        for raw in state.files[file_id].content.splitlines():
            if raw.strip():
                try:
                    lines.append(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    lines.append(None)
    return lines


def _answer(
    state: EmulatorState, job: dict[str, Any], index: int, line: Any
) -> tuple[bool, dict[str, Any]]:
    """One output line for one request line: (succeeded, line)."""
    custom_id = str(line.get("custom_id", index)) if isinstance(line, dict) else str(index)
    out_id = f"batch-{job['id'][:8]}-{index}"
    body = line.get("body") if isinstance(line, dict) else None
    try:
        if not isinstance(body, dict):
            raise ChatError(422, {"object": "error", "message": "each line needs a JSON 'body'"})
        if "model" not in body and job.get("model"):
            body = {**body, "model": job["model"]}
        payload = prepare(body, state.models).complete()
    except ChatError as exc:
        error = {"message": str(exc.body.get("message", exc.status)), "code": exc.status}
        response = {"status_code": exc.status, "body": exc.body}
        return False, {"id": out_id, "custom_id": custom_id, "response": response, "error": error}
    response = {"status_code": 200, "body": payload}
    return True, {"id": out_id, "custom_id": custom_id, "response": response, "error": None}


async def _run(state: EmulatorState, job: dict[str, Any], inline: list[Any]) -> None:
    """Process one job: QUEUED → RUNNING → SUCCESS, or CANCELLED when asked to stop."""
    await asyncio.sleep(state.config.queue_s)
    if job["status"] == "CANCELLATION_REQUESTED":
        job["status"] = "CANCELLED"
        return
    job["status"], job["started_at"] = "RUNNING", int(time.time())
    lines = _input_lines(state, job, inline)
    job["total_requests"] = len(lines)
    outputs: list[bytes] = []
    errors: list[bytes] = []
    for index, line in enumerate(lines):
        if job["status"] == "CANCELLATION_REQUESTED":
            break
        ok, out = _answer(state, job, index, line)
        (outputs if ok else errors).append(orjson.dumps(out))
        job["succeeded_requests" if ok else "failed_requests"] += 1
        job["completed_requests"] += 1
        if index % _YIELD_EVERY == _YIELD_EVERY - 1:
            await asyncio.sleep(0)
    if outputs:
        job["output_file"] = state.add_file(
            f"{job['id']}.jsonl", "batch", b"\n".join(outputs) + b"\n", "batch_result", "mistral"
        ).id
    if errors:
        job["error_file"] = state.add_file(
            f"{job['id']}_error.jsonl",
            "batch",
            b"\n".join(errors) + b"\n",
            "batch_error",
            "mistral",
        ).id
    cancelled = job["status"] == "CANCELLATION_REQUESTED"
    job["status"] = "CANCELLED" if cancelled else "SUCCESS"
    job["completed_at"] = int(time.time())


async def create(request: Request) -> Response:
    """``POST /v1/batch/jobs``."""
    state = _state(request)
    body = await responses.read_json(request)
    if not isinstance(body, dict):
        return responses.error(422, "the request body must be a JSON object")
    input_files = body.get("input_files") or []
    inline = body.get("requests") or []
    if not input_files and not inline:
        return responses.error(422, "give input_files or requests")
    missing = [f for f in input_files if f not in state.files]
    if missing:
        return responses.error(404, f"input file {missing[0]} not found", kind="not_found")
    job: dict[str, Any] = {
        "id": new_id(),
        "object": "batch",
        "input_files": list(input_files),
        "endpoint": body.get("endpoint", "/v1/chat/completions"),
        "model": body.get("model"),
        "agent_id": None,
        "metadata": body.get("metadata"),
        "errors": [],
        "status": "QUEUED",
        "created_at": int(time.time()),
        "started_at": None,
        "completed_at": None,
        "total_requests": 0,
        "completed_requests": 0,
        "succeeded_requests": 0,
        "failed_requests": 0,
        "output_file": None,
        "error_file": None,
    }
    if job["endpoint"] != "/v1/chat/completions":
        return responses.error(400, "the emulator only batches /v1/chat/completions")
    state.batch_jobs[job["id"]] = job
    state.spawn(_run(state, job, list(inline)))
    return responses.json(job)


async def get(request: Request) -> Response:
    """``GET /v1/batch/jobs/{job_id}``."""
    job = _state(request).batch_jobs.get(request.path_params["job_id"])
    if job is None:
        return responses.error(404, "batch job not found", kind="not_found")
    return responses.json(job)


async def list_jobs(request: Request) -> Response:
    """``GET /v1/batch/jobs`` (optionally filtered by ``status``)."""
    wanted = request.query_params.getlist("status")
    jobs = [j for j in _state(request).batch_jobs.values() if not wanted or j["status"] in wanted]
    return responses.json({"object": "list", "data": jobs, "total": len(jobs)})


async def cancel(request: Request) -> Response:
    """``POST /v1/batch/jobs/{job_id}/cancel``: stops at the next row; finished jobs stay."""
    job = _state(request).batch_jobs.get(request.path_params["job_id"])
    if job is None:
        return responses.error(404, "batch job not found", kind="not_found")
    if job["status"] in ("QUEUED", "RUNNING"):
        job["status"] = "CANCELLATION_REQUESTED"
    return responses.json(job)


def routes() -> list[Route]:
    """The batch API's routes."""
    return [
        Route("/v1/batch/jobs", create, methods=["POST"]),
        Route("/v1/batch/jobs", list_jobs, methods=["GET"]),
        Route("/v1/batch/jobs/{job_id}", get, methods=["GET"]),
        Route("/v1/batch/jobs/{job_id}/cancel", cancel, methods=["POST"]),
    ]
