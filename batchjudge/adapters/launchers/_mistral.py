"""The ``mistral`` launcher: hosted fine-tuning over the raw REST API (aiohttp).

``mistralai`` 3.x has no fine-tuning client, so this speaks the documented endpoints itself::

    POST /v1/files                            multipart file, purpose=fine-tune
    POST /v1/fine_tuning/jobs                 model, training_files, validation_files,
                                              hyperparameters {training_steps, learning_rate,
                                              epochs}, suffix, integrations, auto_start
    GET  /v1/fine_tuning/jobs/{id}            POST .../start     POST .../cancel

The hosted endpoint answers ``410 Gone`` since mid-2026 (and answered 422 for every model in
March 2026): those become :class:`FineTuningGone` and :class:`JobRejected` with a message that
says what happened and what to use instead; 401/403 become :class:`AuthError`. Point
``base_url`` at the emulator (``batchjudge emulator``) and the same requests train a local
judge there. The API key and the W&B key are sent as the API requires, never logged.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import anyio
import orjson

from batchjudge.adapters.finetune import check_file
from batchjudge.adapters.launchers._protocol import (
    FineTuningGone,
    Job,
    JobRejected,
    LaunchSpec,
)
from batchjudge.engine.providers._mistral_wire import normalise_base_url
from batchjudge.errors import AuthError, ConfigError, ProviderError, TransientError

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
_USER_AGENT = "batchjudge (fine-tuning launcher)"


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


def _raise_for(status: int, body: bytes, what: str) -> None:
    """Translate a non-2xx answer into the project's errors."""
    detail = _detail(body)
    if status == 410:
        raise FineTuningGone(GONE_HINT, status=410)
    if status == 422:
        raise JobRejected(_REJECTED_HINT.format(detail=detail), status=422)
    if status in (401, 403):
        raise AuthError(f"{what}: the API key was rejected ({status}); check MISTRAL_API_KEY", status=status)
    if status == 429 or status >= 500:
        raise TransientError(f"{what}: {status} {detail}; try again later", status=status)
    raise JobRejected(f"{what}: {status} {detail}", status=status)


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
        key = api_key or os.environ.get("MISTRAL_API_KEY")
        if not key:
            raise ConfigError("the mistral launcher needs an API key: set MISTRAL_API_KEY")
        self._base = normalise_base_url(base_url) + "/v1"
        self._headers = {"Authorization": f"Bearer {key}", "Accept": "application/json", "User-Agent": _USER_AGENT}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"MistralLauncher(base_url={self._base!r})"

    async def _request(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        try:
            async with self._session.request(method, self._base + path, **kwargs) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{what}: cannot reach {self._base} ({type(exc).__name__}: {exc})") from exc
        if status >= 400:
            _raise_for(status, body, what)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProviderError(f"{what}: the answer is not JSON", status=status) from exc
        if not isinstance(data, dict):
            raise ProviderError(f"{what}: expected a JSON object", status=status)
        return data

    async def upload(self, path: os.PathLike[str] | str) -> str:
        """Upload a fine-tuning file (purpose ``fine-tune``); return its file id."""
        form = aiohttp.FormData()
        form.add_field("purpose", "fine-tune")
        content = await anyio.Path(path).read_bytes()
        form.add_field("file", content, filename=os.path.basename(path), content_type="application/jsonl")
        data = await self._request("POST", "/files", f"upload {path}", data=form)
        return str(data["id"])

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
        if self._session is not None and not self._session.closed:
            await self._session.close()
