"""What the README's fine-tune blocks produce: the local judge before and after ``ft launch``.

Usage: ``python benchmarks/finetune_quality.py [--data ../shared/data] [--work DIR]``.

Every step is the CLI command a user types (run as a subprocess, in a work folder that holds
the datasets' text and is never part of the repository), and every figure is what
``batchjudge compare --json`` and the launch's JSON say:

- ``walk``: the walk-through's offline block: fine-tune on synthetic rows and their twins
  (two files, equal shares), then compare with the shipped judge on the project's sample
  twins (balanced accuracy, ROC-AUC, pairwise, McNemar); also the recipe the README had
  before (the twins file alone, ``--val``), for comparison;
- ``fib`` (only where ``DATA/fib`` is present): FIB train alone, and FIB train plus its own
  ``data perturb`` twins (equal shares), each measured on FIB validation (accuracy, ROC-AUC,
  pairwise, McNemar against the shipped judge) and on the twins ``data perturb`` makes of
  FIB validation (pairwise by kind). Nothing is chosen on FIB validation: the fine-tune
  picks its prior's strength and its threshold by cross-validation on the training rows.

Writes ``benchmarks/results/finetune_quality.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "finetune_quality.json"
KINDS = ("entity_swap", "number_swap", "date_swap", "pronoun_swap", "negation")


def _cli(work: Path, *args: str) -> str:
    """Run ``batchjudge ARGS`` in ``work`` (its own home); return stdout, fail loudly."""
    env = {**os.environ, "BATCHJUDGE_HOME": str(work / "home")}
    done = subprocess.run([sys.executable, "-m", "batchjudge", *args], cwd=work, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"batchjudge {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def _launch(work: Path, *args: str) -> dict[str, Any]:
    """``ft launch ARGS --launcher local --force --json``: the job's record."""
    job: dict[str, Any] = json.loads(_cli(work, "ft", "launch", *args, "--launcher", "local", "--force", "--json"))
    if job["status"] != "SUCCESS":
        raise SystemExit(f"ft launch {' '.join(args)}: {job['status']} {job.get('message')}")
    return job


def _figures(run: dict[str, Any]) -> dict[str, Any]:
    pairwise = run.get("pairwise") or {}
    return {
        "accuracy": run["accuracy"], "balanced_accuracy": run["balanced_accuracy"], "roc_auc": run["roc_auc"],
        "pairwise": run["pairwise_accuracy"],
        "by_kind": {k: v["pairwise_accuracy"] for k, v in pairwise.get("by_kind", {}).items()},
    }  # fmt: skip


def _compare(work: Path, baseline: str, *runs: str) -> dict[str, Any]:
    """Each run's figures and its McNemar test against ``baseline``."""
    out = json.loads(_cli(work, "compare", baseline, *runs, "--json"))
    tests = {Path(t["candidate"]).name: t for t in out["tests"]}
    return {
        Path(run["run_dir"]).name: {
            **_figures(run),
            **({"mcnemar": {key: tests[Path(run["run_dir"]).name][key] for key in
                            ("only_baseline_right", "only_candidate_right", "p_value")}}
               if Path(run["run_dir"]).name in tests else {}),
        }
        for run in out["runs"]
    }  # fmt: skip


def _best_accuracy(work: Path, run: str) -> float:
    """The highest accuracy any single threshold on the run's scores reaches: not a figure a
    judge can claim (the threshold is chosen on the rows it scores), but the ceiling no
    threshold rule can pass, for the arithmetic of a target."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(work / run / "results")
    scores = np.array(table.column("score").to_pylist(), dtype=float)
    targets = np.array(table.column("target").to_pylist()) == 1
    return round(max(float(np.mean((scores >= t) == targets)) for t in [*np.unique(scores), np.inf]), 3)


def _heldout(job: dict[str, Any]) -> dict[str, Any]:
    details = job["details"]
    return {"model": job["fine_tuned_model"], "heldout": details["heldout"], "sources": details["sources"]}


def walk(work: Path) -> dict[str, Any]:
    """The walk-through's offline fine-tune, and the recipe it had before, on the sample's twins."""
    _cli(work, "data", "sample", "--out", "data/sample")
    _cli(work, "data", "synth", "--rows", "2000", "--shards", "2", "--out", "data/shards")
    _cli(work, "data", "perturb", "data/sample", "--out", "data/perturbed")
    _cli(work, "run", "data/perturbed", "--out", "runs/shipped", "--provider", "local")
    _cli(work, "data", "perturb", "data/shards", "--out", "data/shards-perturbed")
    _cli(work, "ft", "export", "data/shards", "--out", "synth.jsonl", "--prompt", "ft")
    _cli(work, "ft", "export", "data/shards-perturbed", "--out", "twins.jsonl", "--prompt", "ft")
    _cli(work, "ft", "export", "data/shards-perturbed", "--out", "train.jsonl", "--val", "val.jsonl", "--prompt", "ft")
    jobs = {"synth+twins": _launch(work, "synth.jsonl", "twins.jsonl", "--suffix", "demo"),
            "twins-only": _launch(work, "train.jsonl", "--val", "val.jsonl", "--suffix", "old")}  # fmt: skip
    for name, job in jobs.items():
        _cli(work, "run", "data/perturbed", "--out", f"runs/{name}", "--provider", "local",
             "--model", job["fine_tuned_model"], "--prompt", "ft")  # fmt: skip
    return {"sample_twins": _compare(work, "runs/shipped", *(f"runs/{n}" for n in jobs)),
            "jobs": {name: _heldout(job) for name, job in jobs.items()}}  # fmt: skip


def fib(work: Path, data: Path) -> dict[str, Any]:
    """FIB train alone and with its own twins, measured on FIB validation and its twins."""
    _cli(work, "data", "fib", "--source", str(data / "fib"), "--out", "data/fib")
    val, train = "data/fib/fib-xsum-val.parquet", "data/fib/fib-xsum-train.parquet"
    _cli(work, "data", "perturb", val, "--out", "data/fib-val-twins")
    _cli(work, "data", "perturb", train, "--out", "data/fib-train-twins")
    _cli(work, "ft", "export", train, "--out", "fib.jsonl", "--prompt", "ft")
    _cli(work, "ft", "export", "data/fib-train-twins", "--out", "fib-twins.jsonl", "--prompt", "ft")
    _cli(work, "run", val, "--out", "runs/fib-shipped", "--provider", "local")
    _cli(work, "run", "data/fib-val-twins", "--out", "runs/twins-shipped", "--provider", "local")
    jobs = {"fib": _launch(work, "fib.jsonl", "--suffix", "fib"),
            "fib+twins": _launch(work, "fib.jsonl", "fib-twins.jsonl", "--suffix", "fib-twins")}  # fmt: skip
    for name, job in jobs.items():
        model = ("--provider", "local", "--model", job["fine_tuned_model"], "--prompt", "ft")
        _cli(work, "run", val, "--out", f"runs/fib-{name}", *model)
        _cli(work, "run", "data/fib-val-twins", "--out", f"runs/twins-{name}", *model)
    figures = _compare(work, "runs/fib-shipped", *(f"runs/fib-{n}" for n in jobs))
    for name in figures:
        figures[name]["best_threshold_accuracy"] = _best_accuracy(work, f"runs/{name}")
    return {
        "fib_val": figures,
        "fib_val_twins": _compare(work, "runs/twins-shipped", *(f"runs/twins-{n}" for n in jobs)),
        "jobs": {name: _heldout(job) for name, job in jobs.items()},
    }


def _row(name: str, r: dict[str, Any]) -> str:
    test = r.get("mcnemar")
    cell = f"{test['only_baseline_right']}/{test['only_candidate_right']}, p = {test['p_value']:.3f}" if test else "–"
    kinds = " | ".join(f"{r['by_kind'][k]:.3f}" if k in r["by_kind"] else "–" for k in KINDS)
    return (f"| {name} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['roc_auc']:.3f} | "
            f"{r['pairwise']:.3f} | {kinds} | {cell} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=None, help="keep the work folder here (default: a temporary one)")
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"walk": walk(work)}
        if (args.data / "fib").is_dir():
            report["fib"] = fib(work, args.data)
    report.update(load_avg_1m_5m_15m=[round(v, 2) for v in os.getloadavg()],
                  wall_s=round(time.perf_counter() - started, 1))  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("| judge, data | accuracy | balanced acc. | ROC-AUC | pairwise | " + " | ".join(KINDS) + " | McNemar (only shipped / only tuned right) |")
    print("|---|---|---|---|---|" + "---|" * len(KINDS) + "---|")
    for section, tables in (("walk", ("sample_twins",)), ("fib", ("fib_val", "fib_val_twins"))):
        for table in tables:
            for name, figures in report.get(section, {}).get(table, {}).items():
                print(_row(f"{name}, {table}", figures))


if __name__ == "__main__":
    main()
