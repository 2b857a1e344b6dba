"""The ``local`` launcher: fine-tune the embedded judge on this machine's CPU.

It reads the same fine-tuning JSONL a hosted job would get (checked against the same rules),
recovers each (document, summary) pair from the rendered prompt and the label from the
assistant's answer (:func:`~batchjudge.adapters.finetune.read_examples`), and fine-tunes the
shipped judge (:func:`batchjudge.localjudge.train`): one fit over every training file, each
file a source whose rows together weigh what its ``--weights`` share says, the two classes
weighed equally, pulled toward the shipped judge's weights with a strength and a decision
threshold both chosen by cross-validation on the training documents.

Before registering, the new judge and its starting point are both measured on a held-out
split the fit never saw (neither its weights nor its threshold): the ``--val`` file, or else
a fifth of the training documents. Measured there: accuracy, ROC-AUC, log-loss and pairwise
accuracy (each source weighted by its mixing weight), and pairwise accuracy on twins the
project makes of the split's consistent rows (:mod:`batchjudge.datasets.perturb`: a name,
number or date swapped, a pronoun or a negation flipped), which the starting judge tells
apart and which a held-out split rarely holds (FIB has few negations). A judge worse than
its starting point on accuracy, ROC-AUC or those twins is refused unless ``force``; every
figure is kept in the job's details either way. A judge that passes is registered as
``ft:local-judge:SUFFIX:ID``, a name ``--provider local --model`` accepts.
:func:`train_and_register` (no held-out split, no refusal, as a hosted job) is the training
step of the emulator's fine-tuning endpoint, so offline and emulated jobs train alike.

Jobs finish inside :meth:`LocalLauncher.launch` (seconds to minutes); their records are kept
as JSON in ``$BATCHJUDGE_HOME/jobs`` so ``status`` works from another process.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from batchjudge.adapters.finetune import read_examples
from batchjudge.adapters.launchers._protocol import Job, LaunchSpec, estimate
from batchjudge.errors import ConfigError

if TYPE_CHECKING:
    from batchjudge.localjudge import LocalJudge

__all__ = [
    "HELDOUT_PER_MILLE",
    "LOCAL_BASE",
    "LocalLauncher",
    "ModelRefused",
    "TrainingSet",
    "jobs_dir",
    "read_training",
    "train_and_register",
]

LOCAL_BASE = "local-judge"
"""The base model of every local job, whatever ``spec.model`` says (it sets only the tokenizer)."""

HELDOUT_PER_MILLE = 200
"""Documents (per thousand) held out of the training to measure a job without ``--val``."""


@dataclass(frozen=True)
class TrainingSet:
    """Labelled pairs, each with its source, and each source's mixing weight."""

    premises: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    shares: dict[str, float] = field(default_factory=dict)

    def take(self, keep: Sequence[bool]) -> TrainingSet:
        """The rows where ``keep`` is true."""
        rows = [i for i, k in enumerate(keep) if k]
        return TrainingSet([self.premises[i] for i in rows], [self.hypotheses[i] for i in rows],
                           [self.targets[i] for i in rows], [self.sources[i] for i in rows], dict(self.shares))  # fmt: skip


def read_training(files: Sequence[tuple[str, Sequence[bytes | str]]], weights: Sequence[float]) -> TrainingSet:
    """A :class:`TrainingSet` from ``(name, JSONL lines)`` per training file and its weight."""
    data = TrainingSet()
    for (name, lines), weight in zip(files, weights, strict=True):
        pairs = read_examples(lines, where=name)
        data.premises.extend(pairs.premises)
        data.hypotheses.extend(pairs.hypotheses)
        data.targets.extend(pairs.targets)
        data.sources.extend([name] * len(pairs.targets))
        data.shares[name] = float(weight)
    return data


def _fine_tune(data: TrainingSet, name: str, seed: int) -> LocalJudge:
    """The shipped judge fine-tuned on ``data``: pulled toward its weights, each source
    weighed by its share, the classes balanced (twins, all inconsistent, would otherwise
    become the judge's base rate)."""
    from batchjudge.localjudge import LocalJudge, train

    return train(data.premises, data.hypotheses, data.targets, name=name, seed=seed, data=name,
                 prior=LocalJudge.load(), sources=data.sources, source_weights=data.shares,
                 balance=True)  # fmt: skip


def train_and_register(data: TrainingSet, name: str, seed: int) -> str:
    """Fine-tune the shipped judge on every row of ``data``, register it as ``name``; return it."""
    from batchjudge.localjudge import register

    register(_fine_tune(data, name, seed))
    return name


def jobs_dir() -> Path:
    """Where local job records live: beside the registered models."""
    from batchjudge.localjudge import models_dir

    return models_dir().parent / "jobs"


def _held_out(premises: Sequence[str], seed: int) -> list[bool]:
    """Which rows are held out: the documents (at least one, when there are two or more)
    whose seeded hashes are the lowest :data:`HELDOUT_PER_MILLE` per thousand."""
    salt = f"heldout:{seed}".encode()
    documents = sorted(set(premises), key=lambda p: hashlib.blake2b(p.encode(), digest_size=8, key=salt).digest())
    count = max(1, round(len(documents) * HELDOUT_PER_MILLE / 1000)) if len(documents) > 1 else 0
    chosen = set(documents[:count])
    return [p in chosen for p in premises]


def _pairwise(groups: Sequence[str], targets: Sequence[int], scores: Sequence[float]) -> float | None:
    """Pairwise accuracy: in each group, how often a consistent row scores above an
    inconsistent one (ties half); None when no group holds both."""
    from batchjudge.core.metrics import pairwise_accuracy

    return pairwise_accuracy(list(groups), list(targets), list(scores)).value


def _measure(judge: LocalJudge, data: TrainingSet) -> dict[str, float | None]:
    """Accuracy, ROC-AUC, log-loss and pairwise accuracy (documents as groups) on ``data``:
    per source, then averaged with the sources' mixing weights (a source's share of the
    measure is its share of the training)."""
    import numpy as np

    from batchjudge.localjudge import log_loss
    from batchjudge.core.metrics import confusion, roc_auc

    judged = judge.predict_many(zip(data.premises, data.hypotheses, strict=True))
    figures: dict[str, list[tuple[float, float]]] = {"accuracy": [], "roc_auc": [], "log_loss": [], "pairwise": []}
    for source in sorted(set(data.sources)):
        rows = [i for i, s in enumerate(data.sources) if s == source]
        y = [data.targets[i] for i in rows]
        scores = [judged[i].score for i in rows]
        share = data.shares.get(source, 1.0)
        accuracy = confusion(y, [judged[i].verdict for i in rows]).accuracy()
        auc = roc_auc(y, scores)
        loss = log_loss(np.array(y, dtype=float), np.array(scores))
        pairwise = _pairwise([data.premises[i] for i in rows], y, scores)
        for key, value in (("accuracy", accuracy), ("roc_auc", auc), ("log_loss", loss), ("pairwise", pairwise)):
            if value is not None:
                figures[key].append((value, share))
    return {
        key: round(sum(v * w for v, w in pairs) / sum(w for _, w in pairs), 6) if pairs and sum(w for _, w in pairs) else None
        for key, pairs in figures.items()
    }


def _twins(data: TrainingSet, seed: int) -> TrainingSet:
    """The consistent rows of ``data`` (each once) and their twins (every kind that applies;
    a row without one is left out), each original and its twins one group under its index."""
    from batchjudge.datasets.perturb import KINDS, perturb_summary

    twins = TrainingSet()
    seen: set[tuple[str, str]] = set()
    for i, (premise, hypothesis, target) in enumerate(zip(data.premises, data.hypotheses, data.targets, strict=True)):
        if target != 1 or (premise, hypothesis) in seen:  # a row two files share is one original
            continue
        seen.add((premise, hypothesis))
        made = [t for kind in KINDS if (t := perturb_summary(premise, hypothesis, kind, seed=seed, key=str(i)))]
        if not made:
            continue
        for text, label, kind in [(hypothesis, 1, "consistent"), *((t.hypothesis, 0, t.kind) for t in made)]:
            twins.premises.append(premise)
            twins.hypotheses.append(text)
            twins.targets.append(label)
            twins.sources.append(f"{i}:{kind}")
    return twins


def _measure_twins(judge: LocalJudge, twins: TrainingSet) -> dict[str, float | None]:
    """Pairwise accuracy on ``twins`` (from :func:`_twins`): over all of them, then per kind."""
    scores = [j.score for j in judge.predict_many(zip(twins.premises, twins.hypotheses, strict=True))]
    groups = [source.split(":")[0] for source in twins.sources]
    kinds = [source.split(":")[1] for source in twins.sources]
    figures = {"all": _pairwise(groups, twins.targets, scores)}
    for kind in sorted(set(kinds) - {"consistent"}):
        rows = [i for i, k in enumerate(kinds) if k in ("consistent", kind)]
        figures[kind] = _pairwise([groups[i] for i in rows], [twins.targets[i] for i in rows], [scores[i] for i in rows])
    return {key: None if value is None else round(value, 6) for key, value in figures.items()}


def _worse(before: dict[str, float | None], after: dict[str, float | None], keys: Sequence[str]) -> list[str]:
    """The measures among ``keys`` on which ``after`` falls below ``before``."""
    return [
        key for key in keys
        if before.get(key) is not None and after.get(key) is not None and after[key] < before[key]  # type: ignore[operator]
    ]  # fmt: skip


class ModelRefused(ConfigError):
    """The fine-tuned judge measured worse than its starting point; it was not registered."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


def _jsonable(value: Any) -> Any:
    """A spec field as JSON: paths resolved to strings, tuples as lists."""
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


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
        from batchjudge.localjudge import LocalJudge, register

        files: list[tuple[str, list[bytes]]] = []
        for number, path in enumerate(spec.train_files, start=1):
            name_taken = any(name == path.name for name, _ in files)
            with path.open("rb") as handle:
                files.append((f"{path.name}#{number}" if name_taken else path.name, handle.readlines()))
        data = read_training(files, spec.weights())
        name = f"ft:{LOCAL_BASE}:{spec.suffix or 'local'}:{job_id[:8]}"
        if spec.val_file is not None:
            with spec.val_file.open("rb") as handle:
                heldout = read_training([(spec.val_file.name, handle.readlines())], [1.0])
            split = f"the validation file {spec.val_file.name}"
        else:
            held = _held_out(data.premises, spec.seed)
            heldout, data = data.take(held), data.take([not h for h in held])
            split = f"{HELDOUT_PER_MILLE / 10:g}% of the training documents, kept out of the training"
        judge = _fine_tune(data, name, spec.seed)
        if len(set(heldout.targets)) < 2:
            raise ConfigError(f"{split}: the held-out rows need both labels to measure the judge; give a --val file")
        start = LocalJudge.load()
        before, after = _measure(start, heldout), _measure(judge, heldout)
        twins = _twins(heldout, spec.seed)
        twins_before, twins_after = _measure_twins(start, twins), _measure_twins(judge, twins)
        details: dict[str, Any] = {
            "train_rows": len(data.targets),
            "sources": {s: {"rows": data.sources.count(s), "weight": w} for s, w in data.shares.items()},
            "heldout": {"rows": len(heldout.targets), "split": split, "before": before, "after": after,
                        "starting_point": LOCAL_BASE,
                        "twins": {"rows": len(twins.targets), "before": twins_before, "after": twins_after}},
        }  # fmt: skip
        worse = [f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in _worse(before, after, ("accuracy", "roc_auc"))]
        if _worse(twins_before, twins_after, ("all",)):
            worse.append(f"pairwise on the rows' twins {twins_before['all']:.3f} -> {twins_after['all']:.3f}")
        if worse and not spec.force:
            raise ModelRefused(f"not registered: the fine-tuned judge is worse than {LOCAL_BASE} on "
                               f"{len(heldout.targets)} held-out rows ({', '.join(worse)}); --force registers it anyway",
                               details)  # fmt: skip
        details["forced"] = bool(worse)
        register(judge)
        return {"fine_tuned_model": name, "details": details}

    async def launch(self, spec: LaunchSpec) -> Job:
        """Check the files, then train and register (unless ``auto_start`` is false)."""
        checked = await anyio.to_thread.run_sync(lambda: estimate(spec, model=LOCAL_BASE))
        job = Job(
            id=uuid.uuid4().hex, status="VALIDATED", model=LOCAL_BASE, launcher=self.name,
            trained_tokens=None,
            details={"spec": {k: _jsonable(v) for k, v in asdict(spec).items()},
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
                             "val_file": Path(raw["val_file"]) if raw["val_file"] else None,
                             "more_train_files": tuple(Path(p) for p in raw.get("more_train_files", ())),
                             "train_weights": tuple(raw["train_weights"]) if raw.get("train_weights") else None})
        try:
            trained = await anyio.to_thread.run_sync(self._train, spec, job.id)
        except ModelRefused as exc:
            return self._save(Job(job.id, "FAILED", job.model, self.name, message=str(exc),
                                  details={**job.details, **exc.details}))
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
