"""The Mistral + W&B cookbook's whole loop: measure a judge, fine-tune it, measure again.

Usage::

    python benchmarks/cookbook.py [--data ../shared/data/cookbook] [--backend emulator|local|api]
                                  [--eval-rows N] [--work DIR] [--base-url URL]

Steps (each through the public API, exactly as the CLI would run them):

1. baseline: judge FIB validation zero-shot (``--prompt zero-shot``);
2. export FIB train as fine-tuning JSONL with the ``ft`` prompt, launch a job, wait for it;
3. judge FIB validation with the fine-tuned model and the *same* ``ft`` prompt;
4. the same on FIB train + USB train (the cookbook's mislabelled USB copy, repaired on export);
5. a comparison table: accuracy, balanced accuracy, F1, ROC-AUC and pairwise accuracy (each
   document's consistent summary above its inconsistent one) with bootstrap intervals, ECE,
   and a McNemar test of each judge against the baseline (:func:`batchjudge.report.compare_runs`).

FIB and USB are exported as two training files and launched together: the launcher mixes them
in equal shares, so USB's 5,050 rows cannot drown FIB's 820.

Backends: ``emulator`` (default offline) serves the emulator in-process; jobs go through the
``mistral`` launcher's REST calls and the emulator trains the local judge, and every model is
judged twice — through the emulator (``--provider mistral --base-url``, verdicts only) and
with ``--provider local`` (the same judge, with scores, so ROC-AUC). ``local`` uses the local
launcher and provider only. ``api`` (the default when ``MISTRAL_API_KEY`` is set) judges with
``open-mistral-7b`` and ``mistral-large-latest`` and tries hosted fine-tuning, which answers
410 Gone since mid-2026: the refusal is recorded and those steps are skipped.
Exports, runs and trained judges go to ``--work`` (a temporary folder by default: they hold the
datasets' text, which the repository never keeps); the figures go to
``benchmarks/results/cookbook-BACKEND.json`` and the markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from batchjudge.adapters.finetune import ExportOptions, export_finetune
from batchjudge.adapters.launchers import (
    FineTuningGone,
    JobRejected,
    LaunchSpec,
    make_launcher,
    wait_for_job,
)
from batchjudge.engine.config import RunConfig
from batchjudge.api import run_async
from batchjudge.report import compare_runs, load_prices, load_run

__all__ = ["Judge", "cookbook_flow", "markdown_table"]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"
RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("emulator", "local", "api")
_EMULATOR_KEY = "emulator-key-not-secret"
_FT_PROMPT = "ft"


@dataclass(frozen=True)
class Judge:
    """One evaluation: a run name, how it is judged, and with what it was trained."""

    name: str
    provider: str
    model: str
    prompt: str
    trained_on: str
    base_url: str | None = None


async def _evaluate(judge: Judge, fib_val: Path, runs: Path, eval_rows: int | None, api_key: str | None) -> Path:
    out = runs / judge.name
    config = RunConfig(
        inputs=[str(fib_val)], out=str(out), provider=judge.provider, model=judge.model,
        prompt=judge.prompt, base_url=judge.base_url, api_key=api_key, limit=eval_rows,
        overwrite=True, concurrency=8,
    )
    result = await run_async(config)
    if not result.complete:
        raise RuntimeError(f"{judge.name}: run incomplete ({result.error or result.counts})")
    return out


async def _fine_tune(backend: str, files: Sequence[Path], name: str, work: Path, base_url: str | None,
                     api_key: str | None, seed: int, notes: list[str]) -> str | None:
    """Export each of ``files`` with the ft prompt (one training file per source, mixed in equal
    shares by the launcher), launch, wait; the model name, or None if refused."""
    exports = []
    for number, source in enumerate(files):
        train = work / f"{name}-{number}-{source.stem}.jsonl"
        summary = export_finetune([source], train, options=ExportOptions(prompt=_FT_PROMPT, seed=seed))
        notes += summary.notes + [f"{name}: {w}" for w in summary.warnings]
        notes.append(f"{name}: {source.name}: {summary.train.rows} examples, {summary.train.tokens} tokens "
                     f"({summary.train.consistent} consistent / {summary.train.inconsistent} inconsistent)")
        exports.append(train)
    launcher = make_launcher("local") if backend == "local" else make_launcher(
        "mistral", base_url=base_url, api_key=api_key)
    try:
        job = await launcher.launch(LaunchSpec(exports[0], suffix=name, seed=seed, more_train_files=tuple(exports[1:])))
        job = await wait_for_job(launcher, job.id, interval=0.2 if backend != "api" else 15.0)
    except (FineTuningGone, JobRejected) as exc:
        notes.append(f"{name}: fine-tuning refused: {exc}")
        return None
    finally:
        await launcher.aclose()
    heldout = job.details.get("heldout") if isinstance(job.details, dict) else None
    if heldout:
        notes.append(f"{name}: held out {heldout['rows']} rows ({heldout['split']}): before {heldout['before']}, "
                     f"after {heldout['after']}")
    if job.status != "SUCCESS" or not job.fine_tuned_model:
        notes.append(f"{name}: job {job.id} ended {job.status}: {job.message}")
        return None
    return job.fine_tuned_model


def _judges_for(backend: str, model: str, trained_on: str, prompt: str, base_url: str | None, label: str) -> list[Judge]:
    if backend == "emulator":  # the emulator answers base models with the shipped local judge
        local_model = model if model.startswith("ft:") else "local-judge"
        return [Judge(f"{label}-emulator", "mistral", model, prompt, trained_on, base_url),
                Judge(f"{label}-local", "local", local_model, prompt, trained_on)]
    if backend == "api":
        return [Judge(label, "mistral", model, prompt, trained_on, base_url)]
    return [Judge(label, "local", model, prompt, trained_on)]


async def cookbook_flow(
    fib_train: Path, fib_val: Path, usb_train: Path, work: Path, *, backend: str = "emulator",
    eval_rows: int | None = None, seed: int = 0, base_url: str | None = None,
) -> dict[str, Any]:
    """Run the whole loop into ``work``; return the comparison, the notes and the timings.

    With ``backend="emulator"`` and no ``base_url`` an emulator is served in-process for the
    duration; with ``backend="api"``, ``base_url`` replaces the hosted API (``MISTRAL_API_KEY``
    is read from the environment). Every trained local judge is registered under
    ``$BATCHJUDGE_HOME``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    server = None
    if backend == "emulator" and base_url is None:
        from batchjudge.emulator import EmulatorConfig, EmulatorServer

        server = EmulatorServer(EmulatorConfig(queue_s=0.0)).start()
        base_url = server.url
    api_key = _EMULATOR_KEY if backend == "emulator" else None
    work.mkdir(parents=True, exist_ok=True)
    runs = work / "runs"
    notes: list[str] = []
    timings: dict[str, float] = {}
    judges: list[Judge] = []
    try:
        if backend == "api":
            baselines = [("open-mistral-7b", "zero-shot-7b"), ("mistral-large-latest", "zero-shot-large")]
        elif backend == "emulator":
            baselines = [("open-mistral-7b", "zero-shot")]
        else:
            baselines = [("local-judge", "zero-shot")]
        for model, label in baselines:
            judges += _judges_for(backend, model, "-", "zero-shot", base_url, label)
        for name, files, trained_on in (("fib", [fib_train], "FIB"), ("fib-usb", [fib_train, usb_train], "FIB + USB (repaired)")):
            started = time.perf_counter()
            tuned = await _fine_tune(backend, files, name, work, base_url, api_key, seed, notes)
            timings[f"fine-tune {name}"] = round(time.perf_counter() - started, 2)
            if tuned is not None:
                judges += _judges_for(backend, tuned, trained_on, _FT_PROMPT, base_url, f"ft-{name}")
        paths = []
        for judge in judges:
            started = time.perf_counter()
            paths.append(await _evaluate(judge, fib_val, runs, eval_rows, api_key))
            timings[f"evaluate {judge.name}"] = round(time.perf_counter() - started, 2)
    finally:
        if server is not None:
            server.stop()
    comparison = compare_runs([load_run(p) for p in paths], load_prices(None)) if len(paths) > 1 else None
    return {"backend": backend, "eval_rows": eval_rows, "judges": [j.__dict__ for j in judges],
            "comparison": comparison, "notes": notes, "timings_s": timings}


def _cell(value: float | None, interval: Sequence[float] | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else f"{value:.3f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The comparison as a markdown table, one row per judge, tests against the first."""
    comparison = result["comparison"]
    if comparison is None:
        return "(fewer than two judges ran: nothing to compare)"
    tests = {t["candidate"]: t for t in comparison["tests"]}
    lines = [
        ("| judge | provider | model | prompt | trained on | rows | accuracy [95% CI] | balanced acc. "
         "| F1 consistent | F1 inconsistent | ROC-AUC [95% CI] | pairwise [95% CI] | ECE "
         "| McNemar vs first (only first right / only this right, p) |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for judge, summary in zip(result["judges"], comparison["runs"], strict=True):
        intervals = summary.get("intervals") or {}
        test = tests.get(Path(summary["run_dir"]).name)
        versus = "(baseline)" if test is None else f"{test['only_baseline_right']} / {test['only_candidate_right']}, p = {test['p_value']:.3g}"
        model = judge["model"] if len(judge["model"]) < 40 else judge["model"][:37] + "…"
        lines.append(
            f"| {judge['name']} | {judge['provider']} | `{model}` | {judge['prompt']} | {judge['trained_on']} "
            f"| {summary['n_scored']} | {_cell(summary['accuracy'], intervals.get('accuracy'))} "
            f"| {_cell(summary['balanced_accuracy'])} | {_cell((summary['f1'] or {}).get('consistent'))} "
            f"| {_cell((summary['f1'] or {}).get('inconsistent'))} "
            f"| {_cell(summary['roc_auc'], intervals.get('roc_auc'))} "
            f"| {_cell(summary.get('pairwise_accuracy'), intervals.get('pairwise_accuracy'))} "
            f"| {_cell(summary['ece'])} | {versus} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Folder with fib-train.jsonl, fib-val.jsonl, usb-train.jsonl.")
    default_backend = "api" if os.environ.get("MISTRAL_API_KEY") else "emulator"
    parser.add_argument("--backend", choices=BACKENDS, default=default_backend)
    parser.add_argument("--eval-rows", type=int, default=None, help="Judge only the first N FIB validation rows (the cookbook used 100).")
    parser.add_argument("--work", type=Path, default=None, help="Folder for exports, runs and judges (default: temporary).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-url", default=None, help="A Mistral-compatible server instead of the hosted API or the in-process emulator.")
    args = parser.parse_args()
    files = [args.data / name for name in ("fib-train.jsonl", "fib-val.jsonl", "usb-train.jsonl")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        parser.error(f"missing data files: {', '.join(missing)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="batchjudge-cookbook-"))
    os.environ.setdefault("BATCHJUDGE_HOME", str(work / "home"))  # trained judges stay in the work folder
    os.environ.setdefault("WEAVE_DISABLED", "true")
    started = time.perf_counter()
    fib_train, fib_val, usb_train = files
    result = anyio.run(lambda: cookbook_flow(fib_train, fib_val, usb_train, work, backend=args.backend,
                                             eval_rows=args.eval_rows, seed=args.seed, base_url=args.base_url))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"cookbook-{args.backend}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    for note in result["notes"]:
        print(f"- {note}")
    print(markdown_table(result))
    print(f"\nwall time {result['wall_s']} s; timings: {result['timings_s']}")


if __name__ == "__main__":
    main()
