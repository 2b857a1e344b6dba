"""The ``mistral`` launcher: hosted fine-tuning over the raw REST API, through the package's
one client (:class:`~batchjudge.adapters.mistral.ApiClient`).

``mistralai`` 3.x has no fine-tuning client, so this speaks the documented endpoints itself::

    POST /v1/files                            multipart file, purpose=fine-tune
    POST /v1/fine_tuning/jobs                 model, training_files, validation_files,
                                              hyperparameters {training_steps, learning_rate,
                                              epochs}, suffix, integrations, auto_start
    GET  /v1/fine_tuning/jobs/{id}            POST .../start     POST .../cancel

The hosted endpoint answers ``410 Gone`` since mid-2026 (and answered 422 for every model in
March 2026): those become :class:`FineTuningGone` and :class:`JobRejected` with a message that
says what happened and what to use instead; every other status is translated as for any
other call (401/403 :class:`AuthError`, 429 :class:`RateLimitError`, 5xx :class:`TransientError`). Point
``base_url`` at the emulator (``batchjudge emulator``) and the same requests train a local
judge there. The API key and the W&B key are sent as the API requires, never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from batchjudge.adapters.finetune import check_file
from batchjudge.adapters.launchers._protocol import (
    FineTuningGone,
    Job,
    JobRejected,
    LaunchSpec,
)
from batchjudge.adapters.mistral import ApiClient
from batchjudge.errors import ConfigError, ProviderError

__all__ = ["GONE_HINT", "MistralLauncher"]

GONE_HINT = (
    "Mistral's fine-tuning API answered 410 Gone: hosted fine-tuning was removed from the API. "
    "Use `--launcher local` to fine-tune the local judge on this machine, or `--base-url` with "
    "`batchjudge emulator` to rehearse the hosted flow."
)
_REJECTED_HINT = (
    "the fine-tuning API refused the job (422): {detail}. In March 2026 it answered 422 for "
    "every model; check the model name and hyperparameters, or use `--launcher local`."
)


def _job(data: dict[str, Any]) -> Job:
    return Job(
        id=str(data.get("id")),
        status=str(data.get("status")),
        model=str(data.get("model")),
        launcher="mistral",
        fine_tuned_model=data.get("fine_tuned_model"),
        message=data.get("message"),
        trained_tokens=data.get("trained_tokens"),
        details=data,
    )


def _detail(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip() or "(no body)"
    if isinstance(data, dict):
        for key in ("message", "detail"):
            if data.get(key):
                return str(data[key])
    return str(data)[:200]


def _fine_tuning_error(status: int, body: bytes) -> ProviderError | None:
    """What only the fine-tuning API means by a status; the client's translation does the rest."""
    if status == 410:
        return FineTuningGone(GONE_HINT, status=410)
    if status == 422:
        return JobRejected(_REJECTED_HINT.format(detail=_detail(body)), status=422)
    if 400 <= status < 500 and status not in (401, 403, 408, 429):
        return JobRejected(f"the fine-tuning API refused the request ({status}): {_detail(body)}", status=status)
    return None


def _integrations(spec: LaunchSpec) -> list[dict[str, str]]:
    """The W&B integration when asked for; ConfigError when ``WANDB_API_KEY`` is missing."""
    if not spec.wandb_project:
        return []
    wandb_key = os.environ.get("WANDB_API_KEY")
    if not wandb_key:
        raise ConfigError("--wandb-project needs WANDB_API_KEY in the environment")
    return [{"type": "wandb", "project": spec.wandb_project, "api_key": wandb_key}]


class MistralLauncher:
    """Fine-tuning jobs on a Mistral-compatible API; see the module docstring."""

    name = "mistral"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, timeout: float = 120.0) -> None:
        self._api = ApiClient(api_key=api_key, base_url=base_url, timeout=timeout, max_reply_bytes=None)

    def __repr__(self) -> str:
        return f"MistralLauncher(base_url={self._api.base_url!r})"

    async def _request(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        data = await self._api.call(method, f"/v1{path}", what=what, on_error=_fine_tuning_error, **kwargs)
        if not isinstance(data, dict):
            raise ProviderError(f"{what}: expected a JSON object")
        return data

    async def upload(self, path: os.PathLike[str] | str) -> str:
        """Upload a fine-tuning file (purpose ``fine-tune``); return its file id."""
        return await self._api.upload_file(Path(path), purpose="fine-tune")

    def job_body(self, spec: LaunchSpec, train_ids: str | list[str], val_id: str | None) -> dict[str, Any]:
        """The create-job body for ``spec`` and uploaded file ids (one per training file)."""
        ids = [train_ids] if isinstance(train_ids, str) else train_ids
        body: dict[str, Any] = {
            "model": spec.model,
            "training_files": [{"file_id": i, "weight": w} for i, w in zip(ids, spec.weights(), strict=True)],
            "validation_files": [val_id] if val_id else [],
            "hyperparameters": spec.hyperparameters(),
            "auto_start": spec.auto_start,
            "integrations": _integrations(spec),
        }
        if spec.suffix:
            body["suffix"] = spec.suffix
        return body

    async def create(self, body: dict[str, Any]) -> Job:
        """``POST /v1/fine_tuning/jobs`` with a body from :meth:`job_body`."""
        return _job(await self._request("POST", "/fine_tuning/jobs", "create fine-tuning job", json=body))

    async def launch(self, spec: LaunchSpec) -> Job:
        """Check the files and options locally, upload the files, create the job."""
        for path in spec.train_files:
            check_file(path, model=spec.model)
        if spec.val_file is not None:
            check_file(spec.val_file, model=spec.model)
        _integrations(spec)  # a missing W&B key is refused before anything is uploaded
        train_ids = [await self.upload(path) for path in spec.train_files]
        val_id = await self.upload(spec.val_file) if spec.val_file else None
        return await self.create(self.job_body(spec, train_ids, val_id))

    async def status(self, job_id: str) -> Job:
        return _job(await self._request("GET", f"/fine_tuning/jobs/{job_id}", f"job {job_id}"))

    async def start(self, job_id: str) -> Job:
        return _job(await self._request("POST", f"/fine_tuning/jobs/{job_id}/start", f"start job {job_id}"))

    async def cancel(self, job_id: str) -> Job:
        return _job(await self._request("POST", f"/fine_tuning/jobs/{job_id}/cancel", f"cancel job {job_id}"))

    async def aclose(self) -> None:
        await self._api.aclose()
