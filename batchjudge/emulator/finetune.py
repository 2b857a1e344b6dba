"""Fine-tuning jobs: create, get, list, start, cancel — or ``410 Gone`` like the hosted API.

The hosted ``/v1/fine_tuning/jobs`` answers 410 since mid-2026; ``--ft-gone`` reproduces that.
Otherwise a job really trains: each training line ``{"messages": [..., user, assistant]}``
gives a (document, summary) pair recovered from the user message and a label parsed from the
assistant's answer; the local judge is trained on them and served as
``ft:<base>:<suffix>:<id>``. Reading the examples and training are the local launcher's own
functions (:func:`~batchjudge.adapters.finetune.read_examples`,
:func:`~batchjudge.adapters.launchers.train_and_register`, the default :data:`Trainer`), so an
emulated job and ``batchjudge ft launch --launcher local`` run the same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchjudge.adapters.launchers import TrainingSet, read_training
from batchjudge.adapters.launchers import train_and_register as train_local_judge
from batchjudge.emulator import responses
from batchjudge.emulator.state import EmulatorState, ModelEntry, new_id
from batchjudge.errors import InputError

__all__ = ["GONE_MESSAGE", "Trainer", "routes", "train_local_judge"]

Trainer = Callable[[TrainingSet, str, int], str]
"""``(training set, name, seed) -> judge name`` that chat answers with."""

GONE_MESSAGE = (
    "The fine-tuning API has been removed from the Mistral API (emulated: started with --ft-gone)."
)


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _examples(state: EmulatorState, file_ids: list[str], weights: list[float]) -> TrainingSet:
    """Pairs and labels of the training files (each file a source with its weight), read as
    the local launcher reads them."""
    return read_training([(f, state.files[f].content.splitlines()) for f in file_ids], weights)


async def _train(state: EmulatorState, job: dict[str, Any], trainer: Trainer) -> None:
    """QUEUED → RUNNING → SUCCESS (model registered) or FAILED with the reason."""
    await asyncio.sleep(state.config.queue_s)
    if job["status"] == "CANCELLATION_REQUESTED":
        job["status"] = "CANCELLED"
        return
    job["status"] = "RUNNING"
    try:
        pairs = _examples(state, job["training_files"], job["training_file_weights"])
    except InputError as exc:
        job["status"], job["message"] = "FAILED_VALIDATION", str(exc)
        return
    name = f"ft:{job['model']}:{job['suffix'] or 'emulated'}:{job['id'][:8]}"
    try:
        judge = await asyncio.to_thread(trainer, pairs, name, state.config.seed)
    except Exception as exc:  # noqa: BLE001 - a failed training is the job's outcome
        job["status"], job["message"] = "FAILED", f"training failed: {exc}"
        return
    if job["status"] == "CANCELLATION_REQUESTED":
        job["status"] = "CANCELLED"
        return
    state.models[name] = ModelEntry(name, judge, fine_tuned=True, base=job["model"], job=job["id"])
    job["fine_tuned_model"] = name
    job["trained_tokens"] = (
        sum(len(p) + len(h) for p, h in zip(pairs.premises, pairs.hypotheses)) // 4
    )
    job["status"], job["modified_at"] = "SUCCESS", int(time.time())


def routes(trainer: Trainer) -> list[Route]:
    """The fine-tuning API's routes (all ``410 Gone`` with ``ft_gone``)."""

    async def create(request: Request) -> Response:
        state = _state(request)
        body = await responses.read_json(request)
        if not isinstance(body, dict):
            return responses.error(422, "the request body must be a JSON object")
        model = body.get("model")
        if model not in state.models or state.models[model].fine_tuned:
            return responses.error(
                400, f"model {model!r} cannot be fine-tuned", kind="invalid_model"
            )
        given = body.get("training_files") or []
        files = [f["file_id"] if isinstance(f, dict) else f for f in given]
        weights = [float(f.get("weight", 1.0)) if isinstance(f, dict) else 1.0 for f in given]
        missing = [f for f in files if f not in state.files]
        if not files or missing:
            return responses.error(
                422, f"training file not found: {missing[0] if missing else '(none)'}"
            )
        now = int(time.time())
        auto_start = bool(body.get("auto_start", True))
        job: dict[str, Any] = {
            "id": new_id(),
            "object": "job",
            "job_type": "completion",
            "model": model,
            "suffix": body.get("suffix"),
            "training_files": files,
            "training_file_weights": weights,
            "validation_files": body.get("validation_files") or [],
            "hyperparameters": body.get("hyperparameters") or {},
            "auto_start": auto_start,
            "integrations": body.get("integrations") or [],
            "metadata": None,
            "status": "QUEUED" if auto_start else "VALIDATED",
            "created_at": now,
            "modified_at": now,
            "fine_tuned_model": None,
            "trained_tokens": None,
            "message": None,
        }
        state.ft_jobs[job["id"]] = job
        if auto_start:
            state.spawn(_train(state, job, trainer))
        return responses.json(job)

    async def get(request: Request) -> Response:
        job = _state(request).ft_jobs.get(request.path_params["job_id"])
        if job is None:
            return responses.error(404, "fine-tuning job not found", kind="not_found")
        return responses.json(job)

    async def list_jobs(request: Request) -> Response:
        jobs = list(_state(request).ft_jobs.values())
        return responses.json({"object": "list", "data": jobs, "total": len(jobs)})

    async def start(request: Request) -> Response:
        state = _state(request)
        job = state.ft_jobs.get(request.path_params["job_id"])
        if job is None:
            return responses.error(404, "fine-tuning job not found", kind="not_found")
        if job["status"] == "VALIDATED":
            job["status"] = "QUEUED"
            state.spawn(_train(state, job, trainer))
        return responses.json(job)

    async def cancel(request: Request) -> Response:
        job = _state(request).ft_jobs.get(request.path_params["job_id"])
        if job is None:
            return responses.error(404, "fine-tuning job not found", kind="not_found")
        if job["status"] in ("VALIDATED",):
            job["status"] = "CANCELLED"
        elif job["status"] in ("QUEUED", "RUNNING"):
            job["status"] = "CANCELLATION_REQUESTED"
        return responses.json(job)

    def unless_gone(handler: Callable[[Request], Awaitable[Response]]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            if _state(request).config.ft_gone:
                return responses.error(410, GONE_MESSAGE, kind="gone")
            return await handler(request)

        return endpoint

    return [
        Route("/v1/fine_tuning/jobs", unless_gone(create), methods=["POST"]),
        Route("/v1/fine_tuning/jobs", unless_gone(list_jobs), methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}", unless_gone(get), methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}/start", unless_gone(start), methods=["POST"]),
        Route("/v1/fine_tuning/jobs/{job_id}/cancel", unless_gone(cancel), methods=["POST"]),
    ]
