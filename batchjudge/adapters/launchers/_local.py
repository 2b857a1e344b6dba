"""The ``local`` launcher: fine-tune the embedded judge on this machine's CPU.

It reads the same fine-tuning JSONL a hosted job would get (checked against the same rules),
recovers each (document, summary) pair from the rendered prompt and the label from the
assistant's answer (:func:`~batchjudge.adapters.finetune.read_examples`), trains a local judge
(:func:`batchjudge.localjudge.train`) and registers it as ``ft:local-judge:SUFFIX:ID``, a
name ``--provider local --model`` accepts. :func:`train_and_register` is also the training
step of the emulator's fine-tuning endpoint, so offline and emulated jobs run the same code.

Jobs finish inside :meth:`LocalLauncher.launch` (seconds to minutes); their records are kept
as JSON in ``$BATCHJUDGE_HOME/jobs`` so ``status`` works from another process.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio

from batchjudge.adapters.finetune import read_examples
from batchjudge.adapters.launchers._protocol import Job, LaunchSpec, estimate
from batchjudge.errors import ConfigError

__all__ = ["LOCAL_BASE", "LocalLauncher", "jobs_dir", "train_and_register"]

LOCAL_BASE = "local-judge"
"""The base model of every local job, whatever ``spec.model`` says (it sets only the tokenizer)."""


def train_and_register(premises: list[str], hypotheses: list[str], targets: list[int], name: str, seed: int) -> str:
    """Train a local judge on labelled pairs and register it under ``name``; return ``name``."""
    from batchjudge.localjudge import register, train

    register(train(premises, hypotheses, targets, name=name, seed=seed, data=name))
    return name


def jobs_dir() -> Path:
    """Where local job records live: beside the registered models."""
    from batchjudge.localjudge import models_dir

    return models_dir().parent / "jobs"


def _validation_metrics(name: str, val_file: Path) -> dict[str, float | None]:
    """Accuracy and ROC-AUC of the trained judge on the validation file's examples."""
    from batchjudge.localjudge import LocalJudge
    from batchjudge.core.metrics import confusion, roc_auc

    with val_file.open("rb") as handle:
        pairs = read_examples(handle, where=str(val_file))
    judged = LocalJudge.load(name).predict_many(zip(pairs.premises, pairs.hypotheses, strict=True))
    verdicts = [j.verdict for j in judged]
    return {
        "val_rows": len(verdicts),
        "val_accuracy": confusion(pairs.targets, verdicts).accuracy(),
        "val_roc_auc": roc_auc(pairs.targets, [j.score for j in judged]),
    }


class LocalLauncher:
    """Trains local judges; see the module docstring."""

    name = "local"

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = directory or jobs_dir()

    def _path(self, job_id: str) -> Path:
        if not job_id or not all(c.isalnum() or c == "-" for c in job_id):
            raise ConfigError(f"invalid local job id {job_id!r}")
        return self._dir / f"{job_id}.json"

    def _save(self, job: Job) -> Job:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(job.id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(job), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return job

    def _train(self, spec: LaunchSpec, job_id: str) -> dict[str, Any]:
        with spec.train_file.open("rb") as handle:
            pairs = read_examples(handle, where=str(spec.train_file))
        name = f"ft:{LOCAL_BASE}:{spec.suffix or 'local'}:{job_id[:8]}"
        train_and_register(pairs.premises, pairs.hypotheses, pairs.targets, name, spec.seed)
        details: dict[str, Any] = {"train_rows": len(pairs.targets)}
        if spec.val_file is not None:
            details.update(_validation_metrics(name, spec.val_file))
        return {"fine_tuned_model": name, "details": details}

    async def launch(self, spec: LaunchSpec) -> Job:
        """Check the files, then train and register (unless ``auto_start`` is false)."""
        checked = await anyio.to_thread.run_sync(lambda: estimate(spec, model=LOCAL_BASE))
        job = Job(
            id=uuid.uuid4().hex, status="VALIDATED", model=LOCAL_BASE, launcher=self.name,
            trained_tokens=None,
            details={"spec": {k: str(v.resolve()) if isinstance(v, Path) else v for k, v in asdict(spec).items()},
                     "train_rows": checked.train_rows, "tokens": checked.cost.tokens_per_epoch},
        )
        self._save(job)
        return await self.start(job.id) if spec.auto_start else job

    async def start(self, job_id: str) -> Job:
        """Train a ``VALIDATED`` job now; other jobs are returned as they are."""
        job = await self.status(job_id)
        if job.status != "VALIDATED":
            return job
        raw = dict(job.details["spec"])
        spec = LaunchSpec(**{**raw, "train_file": Path(raw["train_file"]),
                             "val_file": Path(raw["val_file"]) if raw["val_file"] else None})
        try:
            trained = await anyio.to_thread.run_sync(self._train, spec, job.id)
        except Exception as exc:  # noqa: BLE001 - a training failure is the job's outcome, recorded as such
            return self._save(Job(job.id, "FAILED", job.model, self.name, message=str(exc), details=job.details))
        return self._save(Job(job.id, "SUCCESS", job.model, self.name, trained["fine_tuned_model"],
                              trained_tokens=job.details["tokens"], details={**job.details, **trained["details"]}))

    async def status(self, job_id: str) -> Job:
        """The job's stored record; ConfigError when there is none."""
        path = self._path(job_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"no local fine-tuning job {job_id!r} in {self._dir}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable job record ({exc})") from exc
        return Job(**data)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job that was not started; a trained job stays as it is."""
        job = await self.status(job_id)
        if job.status != "VALIDATED":
            return job
        return self._save(Job(job.id, "CANCELLED", job.model, self.name, details=job.details))

    async def aclose(self) -> None:
        """Nothing to release."""
