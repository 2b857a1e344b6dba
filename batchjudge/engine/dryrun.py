"""A dry run: what ``batchjudge run`` would send, counted exactly, with nothing sent or written.

It walks the same plan the run would (:func:`~batchjudge.engine.pipeline.plan_run`): the same
:class:`~batchjudge.engine.reader.Reader` renders every row with the same prompt adapter,
except that every prompt is tokenised exactly (a run skips counting prompts that surely fit
unless a TPM limit needs it). So the prompt tokens a dry run reports are the prompt tokens the
server bills for the same requests: the API's ``usage.prompt_tokens`` is this count (the
emulator counts with the same tokenizer). Rows that already have a result in the run
directory, rows in batch jobs an earlier session left running, ``--limit``, rows that fail
before any call, and identical requests (:mod:`~batchjudge.engine.dedupe`, replayed over the
same window) are accounted as the run would (batch mode shares answers within each chunk
instead, so twins in different chunks may make a call more than counted here). A resume the
run would refuse (other settings, a changed input) is refused here with the same message;
with ``--allow-changed-inputs`` the rows of changed chunks count as rows to judge. The run
directory is only read, never created or locked.

Completion tokens cannot be known before the answers: a dry run gives the expected figure
(:attr:`~batchjudge.engine.config.RunConfig.expected_completion_tokens` per request, what
the TPM bucket reserves) and the ceiling
(``max_tokens`` per request). Money is the caller's: :meth:`DryRun.cost` takes a price
function (the report's price table), so the engine imports no prices.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchjudge.adapters.tokens import tokenizer_family
from batchjudge.core.results import FinishedRow
from batchjudge.engine.batch import rows_in_flight
from batchjudge.engine.checkpoint import key_hashes
from batchjudge.engine.dedupe import KeyWindow, request_key
from batchjudge.engine.inputs import kept_keys
from batchjudge.engine.objrundir import ObjectRunDir, run_dir_at
from batchjudge.engine.pipeline import RunPlan, changed_inputs, check_resume, preflight
from batchjudge.engine.reader import Reader

__all__ = ["DryRun", "dry_run_plan"]

Pricer = Callable[[int, int], float]
"""``(prompt_tokens, completion_tokens) -> USD``."""


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a run would do; every count is exact except the completion tokens."""

    run_dir: str
    provider: str
    model: str
    mode: str
    tokenizer: str
    """The Mistral tokenizer family the prompts were counted with (``tekken``, ``v3``...)."""
    total: int
    """Input rows the run covers (up to ``--limit``)."""
    done: int
    """Rows that already have a result in the run directory (kept)."""
    in_batch_jobs: int
    """Rows in batch jobs an earlier session submitted (followed, not sent again)."""
    failing: int
    """Rows that fail before any call (a null premise, a label that is not 0/1)."""
    requests: int
    """Calls the run would make: one per distinct request (times ``--samples``)."""
    reused: int
    """Rows that would get the answer of an identical request instead of a call."""
    prompt_tokens: int
    """Prompt tokens over those calls, counted exactly."""
    completion_expected: int
    """Expected completion tokens per call (what the TPM bucket reserves)."""
    max_tokens: int
    """The ceiling on completion tokens per call (``--max-tokens``)."""
    truncated_rows: int
    """Rows whose document would be cut to fit the context."""
    rps: float | None = None
    tpm: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def to_judge(self) -> int:
        """Rows this run would give a result: every covered row without one yet."""
        return self.total - self.done - self.in_batch_jobs

    @property
    def completion_tokens(self) -> tuple[int, int]:
        """Completion tokens over all calls: (expected, at most)."""
        return self.requests * self.completion_expected, self.requests * self.max_tokens

    def cost(self, price: Pricer) -> tuple[float, float]:
        """USD under ``price``: (expected, at most)."""
        expected, most = self.completion_tokens
        return price(self.prompt_tokens, expected), price(self.prompt_tokens, most)

    @property
    def seconds(self) -> float | None:
        """Seconds the limits imply at the least (``--rps``, ``--tpm``; the slower wins), or
        None when no limit is set (the server's limits are unknown until it answers)."""
        bounds = []
        if self.rps is not None:
            bounds.append(self.requests / self.rps)
        if self.tpm is not None:
            bounds.append((self.prompt_tokens + self.completion_tokens[0]) / self.tpm * 60.0)
        return max(bounds) if bounds else None


def _done(plan: RunPlan, inputs: dict[str, Any]) -> tuple[np.ndarray, int]:
    """The done-set a run would start from (``inputs``: the preflight's content fingerprint),
    and how many rows batch jobs hold; read only."""
    config = plan.config
    run_dir = run_dir_at(config.out)  # not opened: no lock, no recovery, nothing written
    local = not isinstance(run_dir, ObjectRunDir)
    if local and not run_dir.path.is_dir():
        return np.empty(0, dtype=np.uint64), 0
    stored = run_dir.read_meta()
    if stored is None and not local and not run_dir.parts():
        return np.empty(0, dtype=np.uint64), 0
    check_resume(plan, stored, run_dir.path)
    changes = changed_inputs(plan, stored, inputs)
    if config.overwrite:
        return np.empty(0, dtype=np.uint64), 0
    done, _ = run_dir.done_keys(without_failed=config.retry_failed)
    if changes:  # --allow-changed-inputs: the rows of changed chunks are judged again
        done = np.intersect1d(done, kept_keys(plan.source, changes))
    if not local:
        return done, 0  # --mode batch needs a local --out
    in_jobs = key_hashes(rows_in_flight(run_dir.path))
    return np.union1d(done, in_jobs), int(np.setdiff1d(in_jobs, done).size)


def dry_run_plan(plan: RunPlan) -> DryRun:
    """Walk ``plan`` as its run would, counting; sends nothing and writes nothing."""
    config = plan.config
    exact = plan.exact()
    checked = preflight(plan.source, config.check_labels)
    done, in_jobs = _done(plan, checked.inputs)
    reader = Reader(exact.source, exact.adapter, exact.settings, done=done, limit=config.limit)
    window = KeyWindow() if config.dedupe else None
    seen = failing = requests = reused = prompt_tokens = truncated = 0
    for batch in reader.batches():
        seen += len(batch)
        for item in batch:
            if isinstance(item, FinishedRow):
                failing += 1
                continue
            key = request_key(item.request) if window is not None else None
            if key is not None and window is not None and window.seen(key):
                reused += 1
                continue
            requests += config.samples
            prompt_tokens += item.request.prompt_tokens * config.samples
            truncated += item.truncated > 0
    return DryRun(
        run_dir=os.fspath(config.out), provider=plan.provider, model=plan.model, mode=config.mode,
        tokenizer=tokenizer_family(plan.model), total=plan.total,
        done=plan.total - seen - in_jobs, in_batch_jobs=in_jobs,
        failing=failing, requests=requests, reused=reused, prompt_tokens=prompt_tokens,
        completion_expected=config.expected_completion_tokens, max_tokens=config.max_tokens,
        truncated_rows=truncated, rps=config.rps, tpm=config.tpm,
        warnings=checked.warnings,
    )
