"""The ``local`` launcher trains the embedded judge on exported JSONL and registers it under a
name ``--provider local --model`` accepts; jobs read like the API's; polling reports changes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import anyio
import pyarrow.parquet as pq
import pytest
from ft_fixtures import labelled_parquet
from typer.testing import CliRunner

from batchjudge.adapters.finetune import ExportOptions, export_finetune
from batchjudge.adapters.launchers import (
    Job,
    LaunchSpec,
    LocalLauncher,
    train_and_register,
    wait_for_job,
)
from batchjudge.cli.ft import ft_app
from batchjudge.datasets.io import write_dataset
from batchjudge.datasets.perturb import perturb_table
from batchjudge.emulator import finetune as emulator_finetune
from batchjudge.engine.config import RunConfig
from batchjudge.api import run_async
from batchjudge.errors import ConfigError, InputError
from batchjudge.localjudge import LocalJudge, list_models

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``BATCHJUDGE_HOME`` so registered judges and job records stay in the test."""
    monkeypatch.setenv("BATCHJUDGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(train.jsonl, val.jsonl, the labelled Parquet they came from)."""
    data = labelled_parquet(tmp_path / "data.parquet", 64, seed=21)
    export_finetune([data], tmp_path / "train.jsonl", val_out=tmp_path / "val.jsonl",
                    options=ExportOptions(prompt="ft", val_size=0.25))
    return tmp_path / "train.jsonl", tmp_path / "val.jsonl", data


def test_a_local_job_trains_and_registers_a_judge_the_local_provider_runs(
    home: Path, exported: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    train, val, data = exported
    job = anyio.run(LocalLauncher().launch, LaunchSpec(train, val, suffix="synth"))
    assert job.status == "SUCCESS" and job.finished
    assert job.fine_tuned_model is not None and job.fine_tuned_model.startswith("ft:local-judge:synth:")
    heldout = job.details["heldout"]
    assert job.details["train_rows"] > 0 and heldout["rows"] == 16 and "val.jsonl" in heldout["split"]
    assert heldout["after"]["accuracy"] >= heldout["before"]["accuracy"]
    assert LocalJudge.load(job.fine_tuned_model).provenance["rows"] == job.details["train_rows"]
    config = RunConfig(inputs=[str(data)], out=str(tmp_path / "run"), provider="local",
                       model=job.fine_tuned_model, prompt="ft")
    result = anyio.run(run_async, config)
    assert result.complete and result.counts["ok"] == 64


def test_job_records_outlive_the_launcher_and_finished_jobs_ignore_cancel(
    home: Path, exported: tuple[Path, Path, Path]
) -> None:
    train, _, _ = exported

    async def scenario() -> tuple[Job, Job, Job, Job, Job]:
        held = await LocalLauncher().launch(LaunchSpec(train, auto_start=False, force=True))
        started = await LocalLauncher().start(held.id)
        cancelled_late = await LocalLauncher().cancel(held.id)
        other = await LocalLauncher().launch(LaunchSpec(train, auto_start=False))
        return held, started, cancelled_late, other, await LocalLauncher().cancel(other.id)

    held, started, late, other, cancelled = anyio.run(scenario)
    assert held.status == "VALIDATED" and held.fine_tuned_model is None
    assert started.status == "SUCCESS" and late.status == "SUCCESS"
    assert other.status == "VALIDATED" and cancelled.status == "CANCELLED"


def test_a_file_that_breaks_the_rules_is_refused_before_any_job_exists(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "Document: \\nA\\nSummary: \\nB\\n"}]}\n')
    with pytest.raises(InputError, match="bad.jsonl:1: the last message must be the assistant's answer"):
        anyio.run(LocalLauncher().launch, LaunchSpec(bad))
    assert not (home / "jobs").exists()
    with pytest.raises(ConfigError, match="no local fine-tuning job"):
        anyio.run(LocalLauncher().status, "0123abcd")


def test_the_emulator_trains_with_the_local_launchers_own_function() -> None:
    assert emulator_finetune.train_local_judge is train_and_register


class _Scripted:
    """A launcher whose job walks through given states, one per status call."""

    name = "scripted"

    def __init__(self, states: list[tuple[str, int | None]]) -> None:
        self.states = states
        self.calls = 0

    async def status(self, job_id: str) -> Job:
        status, tokens = self.states[min(self.calls, len(self.states) - 1)]
        self.calls += 1
        return Job(job_id, status, "m", self.name, trained_tokens=tokens)


def test_wait_for_job_reports_each_change_once_and_stops_when_the_job_ends() -> None:
    launcher = _Scripted([("QUEUED", None), ("QUEUED", None), ("RUNNING", 10), ("RUNNING", 20), ("SUCCESS", 20)])
    seen: list[str] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    job = anyio.run(lambda: wait_for_job(launcher, "j", interval=2.0, on_update=lambda j: seen.append(j.line()), sleep=sleep))
    assert job.status == "SUCCESS" and launcher.calls == 5 and slept == [2.0] * 4
    assert seen == ["job j: QUEUED", "job j: RUNNING (10 tokens trained)", "job j: RUNNING (20 tokens trained)",
                    "job j: SUCCESS (20 tokens trained)"]


def test_wait_for_job_gives_up_after_its_timeout() -> None:
    launcher = _Scripted([("RUNNING", None)])

    async def sleep(seconds: float) -> None:
        return None

    job = anyio.run(lambda: wait_for_job(launcher, "j", interval=1.0, timeout=3.0, sleep=sleep))
    assert job.status == "RUNNING" and launcher.calls == 4


def test_cli_launch_dry_run_estimates_and_launch_prints_how_to_evaluate(home: Path, exported: tuple[Path, Path, Path]) -> None:
    train, val, _ = exported
    dry = runner.invoke(ft_app, ["launch", str(train), "--dry-run", "--epochs", "2"])
    assert dry.exit_code == 0, dry.output
    assert "nothing sent" in dry.output and not (home / "jobs").exists()
    traces = home.parent / "traces"
    done = runner.invoke(ft_app, ["launch", str(train), "--val", str(val), "--suffix", "cli", "--trace", f"local:{traces}"])
    assert done.exit_code == 0, done.output
    hint = re.search(r"evaluate it: (batchjudge run .*)", done.output)
    assert hint is not None, done.output
    flags = shlex.split(hint.group(1))
    assert flags[:4] == ["batchjudge", "run", "DATA", "--out"] and flags[5:] == [
        "--provider", "local", "--model", flags[8], "--prompt", "ft"]  # the prompt train.jsonl was made with
    assert flags[8].startswith("ft:local-judge:cli:")
    (record,) = [json.loads(line) for line in (traces / "ops.jsonl").read_text().splitlines()]
    assert record["op"] == "batchjudge.finetune.launch" and record["output"]["status"] == "SUCCESS"
    bad = runner.invoke(ft_app, ["launch", str(train), "--suffix", "a:b"])
    assert bad.exit_code == 2 and "--suffix" in bad.output


def test_a_training_failure_is_the_jobs_outcome_and_the_cli_exits_1(home: Path, tmp_path: Path) -> None:
    data = labelled_parquet(tmp_path / "few.parquet", 8, seed=22)  # fewer rows than the judge trains on
    export_finetune([data], tmp_path / "few.jsonl", options=ExportOptions(prompt="ft"))
    job = anyio.run(LocalLauncher().launch, LaunchSpec(tmp_path / "few.jsonl"))
    assert job.status == "FAILED" and job.fine_tuned_model is None and "at least 20 rows" in (job.message or "")
    result = runner.invoke(ft_app, ["status", job.id])
    assert result.exit_code == 1 and "FAILED" in result.output


def _flipped(source: Path, target: Path) -> Path:
    """``source``'s examples with every label inverted: training data that can only hurt."""
    lines = []
    for line in source.read_text().splitlines():
        example = json.loads(line)
        answer = example["messages"][-1]
        answer["content"] = json.dumps({"consistency": 1 - json.loads(answer["content"])["consistency"]})
        lines.append(json.dumps(example))
    target.write_text("\n".join(lines) + "\n")
    return target


@pytest.fixture
def larger(tmp_path: Path) -> tuple[Path, Path]:
    """(train.jsonl, val.jsonl) of 160 synthetic rows, the ft prompt."""
    data = labelled_parquet(tmp_path / "larger.parquet", 160, seed=23)
    export_finetune([data], tmp_path / "larger-train.jsonl", val_out=tmp_path / "larger-val.jsonl",
                    options=ExportOptions(prompt="ft", val_size=0.25))
    return tmp_path / "larger-train.jsonl", tmp_path / "larger-val.jsonl"


def test_a_judge_worse_than_its_starting_point_is_refused_unless_forced(
    home: Path, larger: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = larger
    bad = _flipped(train, tmp_path / "flipped.jsonl")
    refused = anyio.run(LocalLauncher().launch, LaunchSpec(bad, val, suffix="flipped"))
    assert refused.status == "FAILED" and refused.fine_tuned_model is None
    assert "worse than local-judge" in (refused.message or "") and "--force" in (refused.message or "")
    heldout = refused.details["heldout"]
    assert heldout["after"]["accuracy"] < heldout["before"]["accuracy"]
    assert heldout["twins"]["after"]["all"] < heldout["twins"]["before"]["all"]  # and it forgot its twins
    assert "pairwise on the rows' twins" in (refused.message or "")
    assert not any(name.startswith("ft:local-judge:flipped") for name in list_models())
    forced = anyio.run(LocalLauncher().launch, LaunchSpec(bad, val, suffix="flipped", force=True))
    assert forced.status == "SUCCESS" and forced.details["forced"] is True
    assert forced.fine_tuned_model in list_models()


def test_several_training_files_are_sources_mixed_by_their_weights(home: Path, larger: tuple[Path, Path], tmp_path: Path) -> None:
    train, val = larger
    lines = train.read_text().splitlines()
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_text("\n".join(lines[:40]) + "\n")
    big.write_text("\n".join(lines[40:]) + "\n")
    spec = LaunchSpec(small, val, more_train_files=(big,), train_weights=(3.0, 1.0), force=True)
    job = anyio.run(LocalLauncher().launch, spec)
    assert job.status == "SUCCESS"
    assert job.details["sources"] == {"small.jsonl": {"rows": 40, "weight": 3.0},
                                      "big.jsonl": {"rows": len(lines) - 40, "weight": 1.0}}  # fmt: skip
    provenance = LocalJudge.load(job.fine_tuned_model).provenance
    sources = provenance["sources"]
    assert sources["small.jsonl"]["row_weight"] * 40 == pytest.approx(3 * sources["big.jsonl"]["row_weight"] * (len(lines) - 40))
    with pytest.raises(ConfigError, match="one per file"):
        LaunchSpec(small, more_train_files=(big,), train_weights=(1.0,))


def test_a_second_file_moves_the_judge_as_far_as_its_weight_says(home: Path, larger: tuple[Path, Path], tmp_path: Path) -> None:
    train, val = larger
    flipped = _flipped(train, tmp_path / "flipped.jsonl")  # a second file that says the opposite

    def val_accuracy(weights: tuple[float, float]) -> float:
        spec = LaunchSpec(train, val, more_train_files=(flipped,), train_weights=weights, force=True)
        job = anyio.run(LocalLauncher().launch, spec)
        return float(job.details["heldout"]["after"]["accuracy"])

    assert val_accuracy((4.0, 1.0)) > 0.5 > val_accuracy((1.0, 4.0))  # the first file has no last word


@pytest.fixture
def with_twins(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(train.jsonl, twins.jsonl, val.jsonl): synthetic rows, and `data perturb` twins of
    the training rows' documents, both with the ft prompt."""
    data = labelled_parquet(tmp_path / "rows.parquet", 200, seed=24)
    export_finetune([data], tmp_path / "train.jsonl", val_out=tmp_path / "val.jsonl",
                    options=ExportOptions(prompt="ft", val_size=0.25))
    twins = write_dataset(perturb_table(pq.read_table(data)), tmp_path / "twins.parquet")
    export_finetune([twins], tmp_path / "twins.jsonl", options=ExportOptions(prompt="ft"))
    return tmp_path / "train.jsonl", tmp_path / "twins.jsonl", tmp_path / "val.jsonl"


def test_twins_added_as_a_second_file_change_the_judge_and_the_job_reports_pairwise_and_twins(
    home: Path, with_twins: tuple[Path, Path, Path]
) -> None:
    train, twins, val = with_twins
    alone = anyio.run(LocalLauncher().launch, LaunchSpec(train, val, force=True))
    mixed = anyio.run(LocalLauncher().launch, LaunchSpec(train, val, more_train_files=(twins,), train_weights=(1.0, 1.0), force=True))
    assert alone.status == mixed.status == "SUCCESS"
    judges = [LocalJudge.load(job.fine_tuned_model or "") for job in (alone, mixed)]
    assert max(abs(a - b) for a, b in zip(judges[0].coef, judges[1].coef, strict=True)) > 0.05
    heldout = mixed.details["heldout"]
    assert {"accuracy", "roc_auc", "log_loss", "pairwise"} <= set(heldout["before"]) == set(heldout["after"])
    assert heldout["twins"]["rows"] > 0 and heldout["twins"]["after"]["all"] is not None
    assert {"negation", "all"} <= set(heldout["twins"]["before"])


def test_cli_launch_prints_before_and_after_and_force_registers_a_worse_judge(
    home: Path, larger: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = larger
    bad = _flipped(train, tmp_path / "flipped.jsonl")
    refused = runner.invoke(ft_app, ["launch", str(bad), "--val", str(val), "--suffix", "bad"])
    assert refused.exit_code == 1 and "FAILED" in refused.output and "before (local-judge)" in refused.output
    forced = runner.invoke(ft_app, ["launch", str(bad), "--val", str(val), "--suffix", "bad", "--force"])
    assert forced.exit_code == 0 and "after (fine-tuned)" in forced.output and "SUCCESS" in forced.output
    weights = runner.invoke(ft_app, ["launch", str(train), str(bad), "--weights", "1"])
    assert weights.exit_code == 2 and "--weights" in weights.output
