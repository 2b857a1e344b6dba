"""A run directory says who answered it — provider, model, server host, emulator — and a resume
against anything else is refused; run.json keeps the command that resumes it."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from emulator_fixtures import TEST_KEY, StartEmulator, emulator  # noqa: F401  (fixture)
from typer.testing import CliRunner

from batchjudge import ConfigError, JudgeReply, JudgeRequest, MockProvider, RunConfig, run
from batchjudge.cli import app

runner = CliRunner()


def ok(request: JudgeRequest) -> JudgeReply:
    return JudgeReply('{"consistency": 1}', prompt_tokens=3, completion_tokens=2)


def _meta(out: Path) -> dict[str, object]:
    meta: dict[str, object] = json.loads((out / "run.json").read_text())
    return meta


def test_a_mock_provider_is_recorded_as_mock_and_a_local_run_does_not_adopt_its_results(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    data, out = write_pairs(4), tmp_path / "run"
    run(RunConfig(inputs=[data], out=out), provider=MockProvider(ok))
    meta = _meta(out)
    assert meta["config"]["provider"] == "mock" and meta["config"]["model"] == "mock"  # type: ignore[index]
    assert meta["fingerprint"]["provider"] == "mock" and meta["command"] is None  # type: ignore[index]
    with pytest.raises(ConfigError, match="provider: 'mock' -> 'local'"):
        run(RunConfig(inputs=[data], out=out, provider="local"))


def test_the_endpoint_is_the_servers_host_and_port_and_none_for_the_local_judge() -> None:
    def endpoint(**options: object) -> str | None:
        return RunConfig(inputs=["d.parquet"], out="run", **options).endpoint  # type: ignore[arg-type]

    assert endpoint(provider="mistral") == "api.mistral.ai"
    assert endpoint(provider="mistral", base_url="http://127.0.0.1:8000/v1") == "127.0.0.1:8000"
    assert endpoint(provider="openai", model="m") == "api.openai.com"
    assert endpoint(provider="openai", model="m", base_url="https://Judge.Example.org") == "judge.example.org"
    assert endpoint() is None


def test_the_endpoint_guards_a_resume_and_an_older_run_without_one_is_accepted(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator()
    data, out = write_pairs(4), tmp_path / "run"
    args = ["run", str(data), "--out", str(out), "--provider", "mistral", "--quiet"]
    env = {"MISTRAL_API_KEY": TEST_KEY}
    first = runner.invoke(app, [*args, "--base-url", server.url, "--limit", "2"], env=env, terminal_width=400)
    assert first.exit_code == 0, first.output
    moved = runner.invoke(app, [*args, "--base-url", "https://api.mistral.ai"], env=env, terminal_width=400)
    assert moved.exit_code == 2
    assert f"endpoint (server host): '{server.url.removeprefix('http://')}' -> 'api.mistral.ai'" in moved.output
    meta = _meta(out)
    del meta["fingerprint"]["endpoint"]  # type: ignore[attr-defined]  # as a run.json of an older version
    (out / "run.json").write_text(json.dumps(meta))
    resumed = runner.invoke(app, [*args, "--base-url", server.url], env=env, terminal_width=400)
    assert resumed.exit_code == 0, resumed.output
    assert _meta(out)["fingerprint"]["endpoint"] == server.url.removeprefix("http://")  # type: ignore[index]


def test_the_emulator_is_recorded_and_reported_with_no_money(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator()
    out = tmp_path / "run"
    done = runner.invoke(app, ["run", str(write_pairs(3)), "--out", str(out), "--provider", "mistral", "--quiet",
                               "--base-url", server.url], env={"MISTRAL_API_KEY": TEST_KEY}, terminal_width=400)  # fmt: skip
    assert done.exit_code == 0, done.output
    assert _meta(out)["endpoint"] == {"host": server.url.removeprefix("http://"), "emulator": True}
    report = runner.invoke(app, ["report", str(out), "--resamples", "100"], terminal_width=200)
    assert "via the emulator" in report.output and "none (emulator)" in report.output
    as_json = json.loads(runner.invoke(app, ["report", str(out), "--json", "--resamples", "100"]).output)
    assert (as_json["emulator"], as_json["billed"], as_json["not_billed"]) == (True, False, "emulator")


def test_the_command_line_carries_every_option_used_and_never_the_key_or_overwrite(tmp_path: Path) -> None:
    config = RunConfig(
        inputs=["data/a.parquet", "data/b"], out="runs/x", provider="openai", model="m",
        base_url="http://127.0.0.1:8000", api_key="sk-secret", api_key_env="VLLM_KEY", rps=5.0,
        temperature=0.25, columns={"premise": "doc", "hypothesis": "summary"}, dedupe=False,
        overwrite=True, retry_failed=True, prompt="ft",
    )  # fmt: skip
    assert config.command_line() == [
        "batchjudge", "run", "data/a.parquet", "data/b", "--out", "runs/x", "--provider", "openai",
        "--model", "m", "--prompt", "ft", "--columns", "premise=doc,hypothesis=summary",
        "--base-url", "http://127.0.0.1:8000", "--api-key-env", "VLLM_KEY", "--rps", "5",
        "--temperature", "0.25", "--no-dedupe",
    ]  # fmt: skip


def test_an_interrupted_run_prints_the_command_that_resumes_it(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = emulator(api_key="right")
    monkeypatch.chdir(tmp_path)
    write_pairs(5)
    args = ["run", "pairs.parquet", "--out", "runs/r", "--provider", "mistral", "--base-url", server.url,
            "--prompt", "ft", "--quiet"]  # fmt: skip
    stopped = runner.invoke(app, args, env={"MISTRAL_API_KEY": "wrong"}, terminal_width=400)
    assert stopped.exit_code == 2
    hint = next(line for line in stopped.output.splitlines() if line.startswith("resume: "))
    command = shlex.split(hint.removeprefix("resume: "))
    assert command == ["batchjudge", "run", "pairs.parquet", "--out", "runs/r", "--provider", "mistral",
                       "--prompt", "ft", "--base-url", server.url]  # fmt: skip
    resumed = runner.invoke(app, command[1:], env={"MISTRAL_API_KEY": "right"}, terminal_width=400)
    assert resumed.exit_code == 0 and "5 of 5 rows have results" in resumed.output
