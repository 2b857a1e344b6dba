"""What every fine-tuning launcher speaks: a job spec in, a job out, and the small helpers
every launcher shares (the dry-run estimate and polling until a job ends).

A launcher is one object with four async methods (``launch``, ``status``, ``start``,
``cancel``) and ``aclose``; the job states are the Mistral API's, so a local job and a hosted
one read alike. Launchers never print: :func:`wait_for_job` reports each change through a
callback and the CLI renders it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio

from batchjudge.adapters.finetune import (
    DEFAULT_BASE_MODEL,
    TrainingCost,
    check_file,
    training_cost,
)
from batchjudge.errors import BadRequestError, ConfigError, ProviderError

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "Estimate",
    "FineTuningGone",
    "Job",
    "JobRejected",
    "JobSource",
    "LaunchSpec",
    "Launcher",
    "estimate",
    "wait_for_job",
]

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "FAILED_VALIDATION", "CANCELLED"})
"""States a job never leaves."""
ACTIVE_STATUSES = frozenset({"QUEUED", "STARTED", "RUNNING", "VALIDATING", "CANCELLATION_REQUESTED"})
"""States worth polling (``VALIDATED`` waits for a start and is neither)."""


class FineTuningGone(ProviderError):
    """The fine-tuning API answered ``410 Gone``: hosted fine-tuning no longer exists there."""


class JobRejected(BadRequestError):
    """The fine-tuning API refused the job as sent (``422``, or another 4xx)."""


@dataclass(frozen=True)
class LaunchSpec:
    """One fine-tuning job: files, base model and the hyperparameters the API takes.

    ``wandb_project`` turns on the Weights & Biases integration (the key is read from
    ``WANDB_API_KEY`` by the launcher that needs it, never stored here).
    """

    train_file: Path
    val_file: Path | None = None
    model: str = DEFAULT_BASE_MODEL
    suffix: str | None = None
    training_steps: int | None = None
    learning_rate: float | None = None
    epochs: float | None = None
    wandb_project: str | None = None
    auto_start: bool = True
    seed: int = 0
    more_train_files: tuple[Path, ...] = ()
    """Further training files, each its own source (FIB in one, USB in another)."""
    train_weights: tuple[float, ...] | None = None
    """One mixing weight per training file (``train_file`` first): each file's share of the
    training, however many rows it holds; equal shares when None."""
    force: bool = False
    """Register the trained model even when it is worse than its starting point (local)."""

    @property
    def train_files(self) -> tuple[Path, ...]:
        """Every training file, ``train_file`` first."""
        return (self.train_file, *self.more_train_files)

    def weights(self) -> tuple[float, ...]:
        """The mixing weight of each of :attr:`train_files`."""
        return self.train_weights or (1.0,) * len(self.train_files)

    def __post_init__(self) -> None:
        weights = self.train_weights
        checks = [
            (self.training_steps is None or self.training_steps >= 1, f"--training-steps must be >= 1, got {self.training_steps}"),
            (self.learning_rate is None or self.learning_rate > 0, f"--learning-rate must be > 0, got {self.learning_rate}"),
            (self.epochs is None or self.epochs > 0, f"--epochs must be > 0, got {self.epochs}"),
            (self.suffix is None or (0 < len(self.suffix) <= 18 and ":" not in self.suffix),
             f"--suffix must be 1-18 characters without ':', got {self.suffix!r}"),
            (weights is None or len(weights) == len(self.train_files),
             f"--weights gives {len(weights or ())} weight(s) for {len(self.train_files)} training file(s); give one per file"),
            (weights is None or (all(w >= 0 for w in weights) and sum(weights) > 0),
             f"--weights must be non-negative with a positive sum, got {list(weights or ())}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def hyperparameters(self) -> dict[str, float | int]:
        """The hyperparameters given, as the API names them."""
        values = {"training_steps": self.training_steps, "learning_rate": self.learning_rate, "epochs": self.epochs}
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class Job:
    """A fine-tuning job as a launcher last saw it."""

    id: str
    status: str
    model: str
    launcher: str
    fine_tuned_model: str | None = None
    message: str | None = None
    trained_tokens: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    """Launcher-specific extras (the API's job object, a local job's held-out metrics)."""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def line(self) -> str:
        """One progress line: ``job abc123: RUNNING (4096 tokens trained)``."""
        parts = [f"job {self.id}: {self.status}"]
        if self.trained_tokens:
            parts.append(f"({self.trained_tokens} tokens trained)")
        if self.fine_tuned_model:
            parts.append(f"-> {self.fine_tuned_model}")
        if self.message:
            parts.append(f"— {self.message}")
        return " ".join(parts)


@runtime_checkable
class Launcher(Protocol):
    """Launches and follows fine-tuning jobs somewhere (the Mistral API, this machine)."""

    name: str

    async def launch(self, spec: LaunchSpec) -> Job:
        """Check the files, create the job (started unless ``spec.auto_start`` is false)."""
        ...

    async def status(self, job_id: str) -> Job:
        """The job as it is now."""
        ...

    async def start(self, job_id: str) -> Job:
        """Start a job created with ``auto_start=False``."""
        ...

    async def cancel(self, job_id: str) -> Job:
        """Ask the job to stop; a finished job is returned unchanged."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class JobSource(Protocol):
    """Anything that can say how a job is doing (every :class:`Launcher`)."""

    async def status(self, job_id: str) -> Job:
        """The job as it is now."""
        ...


@dataclass(frozen=True)
class Estimate:
    """A dry run: the checked files and what one job on them would cost."""

    train_rows: int
    val_rows: int
    cost: TrainingCost
    hyperparameters: Mapping[str, float | int]


def estimate(spec: LaunchSpec, *, model: str | None = None) -> Estimate:
    """Check the spec's files against Mistral's rules and estimate the cost; sends nothing.

    ``model`` overrides the priced model (the local launcher trains for free).
    """
    priced = model or spec.model
    checked = [check_file(path, model=spec.model) for path in spec.train_files]
    val_rows = check_file(spec.val_file, model=spec.model).rows if spec.val_file else 0
    cost = training_cost(priced, sum(c.tokens for c in checked), spec.epochs or 1.0)
    return Estimate(sum(c.rows for c in checked), val_rows, cost, spec.hyperparameters())


async def wait_for_job(
    launcher: JobSource,
    job_id: str,
    *,
    interval: float = 10.0,
    timeout: float | None = None,
    on_update: Callable[[Job], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> Job:
    """Poll until the job finishes (or ``timeout`` seconds pass); report each change.

    Returns the last job seen; the caller checks :attr:`Job.finished`.
    """
    waited = 0.0
    last: tuple[str, int | None] | None = None
    while True:
        job = await launcher.status(job_id)
        if on_update is not None and (job.status, job.trained_tokens) != last:
            on_update(job)
        last = (job.status, job.trained_tokens)
        if job.finished or job.status not in ACTIVE_STATUSES or (timeout is not None and waited >= timeout):
            return job
        await sleep(interval)
        waited += interval
