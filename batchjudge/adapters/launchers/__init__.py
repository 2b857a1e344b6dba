"""Fine-tuning job launchers behind one protocol: ``mistral`` (hosted, raw REST) and ``local``.

::

    from batchjudge.adapters.launchers import LaunchSpec, make_launcher, wait_for_job
    launcher = make_launcher("local")
    job = await launcher.launch(LaunchSpec(Path("train.jsonl"), suffix="fib"))
    job.fine_tuned_model        # 'ft:local-judge:fib:1a2b3c4d' -> --provider local --model ...

:func:`estimate` is the dry run (files checked, cost estimated, nothing sent).
"""

from __future__ import annotations

from typing import Any

from batchjudge.adapters.launchers._local import (
    LocalLauncher,
    ModelRefused,
    TrainingSet,
    read_training,
    train_and_register,
)
from batchjudge.adapters.launchers._protocol import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Estimate,
    FineTuningGone,
    Job,
    JobRejected,
    JobSource,
    Launcher,
    LaunchSpec,
    estimate,
    wait_for_job,
)
from batchjudge.errors import ConfigError

__all__ = [
    "ACTIVE_STATUSES",
    "LAUNCHERS",
    "TERMINAL_STATUSES",
    "Estimate",
    "FineTuningGone",
    "Job",
    "JobRejected",
    "JobSource",
    "LaunchSpec",
    "Launcher",
    "LocalLauncher",
    "ModelRefused",
    "TrainingSet",
    "estimate",
    "make_launcher",
    "read_training",
    "train_and_register",
    "wait_for_job",
]

LAUNCHERS: tuple[str, ...] = ("local", "mistral")


def make_launcher(name: str, **options: Any) -> Launcher:
    """The launcher called ``name`` (aiohttp is imported for ``mistral`` only); ``mistral`` takes ``api_key``, ``base_url``, ``timeout``."""
    if name == "local":
        return LocalLauncher()
    if name == "mistral":
        from batchjudge.adapters.launchers._mistral import MistralLauncher

        return MistralLauncher(**options)
    raise ConfigError(f"unknown launcher {name!r} (known: {', '.join(LAUNCHERS)})")
