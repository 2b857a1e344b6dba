"""The ``mistral`` launcher over raw REST, against the emulator over real HTTP: upload, create,
poll, start, cancel; W&B integration; 410 Gone and 422 become clear errors and exit code 3;
the model an emulated job trains answers through ``--provider mistral`` and ``--provider local``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from emulator_fixtures import TEST_KEY, StartEmulator, emulator  # noqa: F401  (fixture)
from ft_fixtures import labelled_parquet
from typer.testing import CliRunner

from batchjudge.adapters.finetune import ExportOptions, export_finetune
from batchjudge.adapters.launchers import (
    FineTuningGone,
    Job,
    JobRejected,
    LaunchSpec,
    wait_for_job,
)
from batchjudge.adapters.launchers._mistral import MistralLauncher
from batchjudge.api import run_async
from batchjudge.cli.ft import EXIT_REFUSED, ft_app
from batchjudge.engine.config import RunConfig
from batchjudge.errors import AuthError, ConfigError

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATCHJUDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)
    return tmp_path / "home"


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    data = labelled_parquet(tmp_path / "data.parquet", 48, seed=31)
    export_finetune([data], tmp_path / "train.jsonl", options=ExportOptions(prompt="ft"))
    return tmp_path / "train.jsonl"


async def _launch_and_wait(url: str, spec: LaunchSpec) -> Job:
    launcher = MistralLauncher(base_url=url)
    try:
        job = await launcher.launch(spec)
        return await wait_for_job(launcher, job.id, interval=0.05, timeout=60)
    finally:
        await launcher.aclose()


def test_an_emulated_job_trains_a_model_usable_through_both_providers(
    emulator: StartEmulator, home: Path, train_file: Path, tmp_path: Path
) -> None:
    server = emulator(queue_s=0.0)
    job = anyio.run(_launch_and_wait, server.url, LaunchSpec(train_file, suffix="judge"))
    assert job.status == "SUCCESS", job.message
    model = job.fine_tuned_model
    assert model is not None and model.startswith("ft:open-mistral-7b:judge:")
    assert job.details["training_files"] and job.launcher == "mistral"
    data = tmp_path / "data.parquet"
    verdicts = {}
    for provider, base_url in (("mistral", server.url), ("local", None)):
        config = RunConfig(inputs=[str(data)], out=str(tmp_path / provider), provider=provider, model=model,
                           prompt="ft", base_url=base_url, api_key=TEST_KEY if base_url else None)
        result = anyio.run(run_async, config)
        assert result.complete and result.counts["ok"] == 48
        from batchjudge.report import load_run

        verdicts[provider] = load_run(tmp_path / provider).results.sort("row_id")["verdict"].to_list()
    assert verdicts["mistral"] == verdicts["local"]


def test_the_create_body_carries_hyperparameters_auto_start_and_wandb(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "wandb-key-not-secret")
    spec = LaunchSpec(Path("t.jsonl"), model="open-mistral-7b", suffix="fib", training_steps=10,
                      learning_rate=1e-4, epochs=2, wandb_project="judges", auto_start=False)
    body = MistralLauncher(base_url="http://127.0.0.1:9").job_body(spec, "file-1", "file-2")
    assert body == {
        "model": "open-mistral-7b", "training_files": [{"file_id": "file-1", "weight": 1}],
        "validation_files": ["file-2"], "hyperparameters": {"training_steps": 10, "learning_rate": 1e-4, "epochs": 2},
        "auto_start": False, "suffix": "fib",
        "integrations": [{"type": "wandb", "project": "judges", "api_key": "wandb-key-not-secret"}],
    }


def test_several_training_files_are_uploaded_and_trained_with_their_weights(
    emulator: StartEmulator, home: Path, train_file: Path, tmp_path: Path
) -> None:
    from batchjudge.localjudge import LocalJudge

    lines = train_file.read_text().splitlines()
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(lines[:16]) + "\n")
    second.write_text("\n".join(lines[16:]) + "\n")
    spec = LaunchSpec(first, more_train_files=(second,), train_weights=(2.0, 1.0))
    body = MistralLauncher(base_url="http://127.0.0.1:9").job_body(spec, ["file-1", "file-2"], None)
    assert body["training_files"] == [{"file_id": "file-1", "weight": 2.0}, {"file_id": "file-2", "weight": 1.0}]
    server = emulator(queue_s=0.0)
    job = anyio.run(_launch_and_wait, server.url, spec)
    assert job.status == "SUCCESS", job.message
    sources = LocalJudge.load(job.fine_tuned_model).provenance["sources"]
    weights = {s["rows"]: s["row_weight"] for s in sources.values()}
    assert weights[16] * 16 == pytest.approx(2 * weights[len(lines) - 16] * (len(lines) - 16))


def test_a_missing_wandb_key_is_refused_before_anything_is_uploaded(
    emulator: StartEmulator, home: Path, train_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    server = emulator()
    with pytest.raises(ConfigError, match="WANDB_API_KEY"):
        anyio.run(_launch_and_wait, server.url, LaunchSpec(train_file, wandb_project="judges"))
    assert server.app.state.emulator.files == {}


def test_a_job_created_without_auto_start_waits_then_starts_or_cancels(
    emulator: StartEmulator, home: Path, train_file: Path
) -> None:
    server = emulator(queue_s=0.0)

    async def scenario() -> tuple[Job, Job, Job]:
        launcher = MistralLauncher(base_url=server.url)
        try:
            first = await launcher.launch(LaunchSpec(train_file, auto_start=False))
            cancelled = await launcher.cancel(first.id)
            second = await launcher.launch(LaunchSpec(train_file, auto_start=False))
            await launcher.start(second.id)
            return first, cancelled, await wait_for_job(launcher, second.id, interval=0.05, timeout=60)
        finally:
            await launcher.aclose()

    first, cancelled, started = anyio.run(scenario)
    assert first.status == "VALIDATED" and cancelled.status == "CANCELLED"
    assert started.status == "SUCCESS"


def test_410_gone_becomes_a_clear_error_and_exit_code_3(emulator: StartEmulator, home: Path, train_file: Path) -> None:
    server = emulator(ft_gone=True)
    with pytest.raises(FineTuningGone, match="410 Gone.*--launcher local") as caught:
        anyio.run(_launch_and_wait, server.url, LaunchSpec(train_file))
    assert caught.value.status == 410
    result = runner.invoke(ft_app, ["launch", str(train_file), "--launcher", "mistral", "--base-url", server.url])
    assert result.exit_code == EXIT_REFUSED
    assert "410 Gone" in result.output and "Traceback" not in result.output


def test_422_becomes_a_clear_error_naming_the_apis_reason(emulator: StartEmulator, home: Path) -> None:
    server = emulator()

    async def create() -> Job:
        launcher = MistralLauncher(base_url=server.url)
        try:
            return await launcher.create(launcher.job_body(LaunchSpec(Path("t.jsonl")), "no-such-file", None))
        finally:
            await launcher.aclose()

    with pytest.raises(JobRejected, match=r"refused the job \(422\): training file not found: no-such-file") as caught:
        anyio.run(create)
    assert caught.value.status == 422


def test_a_rejected_key_is_an_auth_error_and_exit_code_2(emulator: StartEmulator, home: Path, train_file: Path) -> None:
    server = emulator(api_key="the-right-key")
    with pytest.raises(AuthError, match="MISTRAL_API_KEY"):
        anyio.run(_launch_and_wait, server.url, LaunchSpec(train_file))
    result = runner.invoke(ft_app, ["status", "some-job", "--launcher", "mistral", "--base-url", server.url])
    assert result.exit_code == 2 and "rejected" in result.output


def test_the_launcher_needs_a_key_and_never_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(AuthError, match="MISTRAL_API_KEY"):
        MistralLauncher()
    launcher: Any = MistralLauncher(api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(launcher)


def test_cli_launches_without_waiting_then_status_wait_follows_the_job_to_its_model(
    emulator: StartEmulator, home: Path, train_file: Path
) -> None:
    server = emulator(queue_s=0.2)
    common = ["--launcher", "mistral", "--base-url", server.url]
    launched = runner.invoke(ft_app, ["launch", str(train_file), "--no-wait", "--json", *common])
    assert launched.exit_code == 0, launched.output
    job = json.loads(launched.stdout)
    assert job["status"] == "QUEUED" and job["fine_tuned_model"] is None
    followed = runner.invoke(ft_app, ["status", job["id"], "--wait", "--interval", "0.05", *common])
    assert followed.exit_code == 0, followed.output
    hint = f"evaluate it: batchjudge run DATA --out RUN_DIR --provider mistral --base-url {server.url} --model ft:open-mistral-7b:"
    assert "SUCCESS" in followed.output and hint in followed.output.replace("\n", "")
