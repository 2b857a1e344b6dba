"""``--provider openai``: any OpenAI-compatible server, end to end through the CLI against the
emulator's OpenAI mode over real HTTP — its key variable, ``seed`` instead of ``random_seed``,
and the server recorded in ``run.json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from emulator_fixtures import MODEL, TEST_KEY, StartEmulator, emulator  # noqa: F401  (fixture)
from typer.testing import CliRunner

from batchjudge.cli import app
from batchjudge.localjudge import LocalJudge

runner = CliRunner()


def _run(data: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(
        app, ["run", str(data), "--out", str(out), "--quiet", *args],
        env={"OPENAI_API_KEY": TEST_KEY, "MISTRAL_API_KEY": "", **(env or {})}, terminal_width=400,
    )  # fmt: skip
    return result.exit_code, result.output


def test_an_openai_compatible_server_judges_every_row_with_seed_and_its_own_key(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator(api="openai")
    data = write_pairs(12)
    code, output = _run(data, tmp_path / "run", "--provider", "openai", "--base-url", server.url,
                        "--model", MODEL, "--seed", "7")  # fmt: skip
    assert code == 0, output
    results = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet").sort("row_id")
    assert results["status"].to_list() == ["ok"] * 12
    table = pl.read_parquet(data)
    judge = LocalJudge.load("local-judge")
    expected = sorted(judge.predict(p, h).verdict for p, h in zip(table["premise"], table["hypothesis"]))
    assert sorted(results["verdict"].to_list()) == expected
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    host = server.url.removeprefix("http://")
    assert meta["fingerprint"]["provider"] == "openai" and meta["fingerprint"]["endpoint"] == host
    assert meta["endpoint"] == {"host": host, "emulator": True}
    assert "answered by the emulator: nothing billed" in output


def test_the_mistral_provider_is_refused_there_for_its_random_seed(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    """The difference the dialect makes: the same run with Mistral's body fails every row."""
    server = emulator(api="openai")
    code, _ = _run(write_pairs(3), tmp_path / "run", "--provider", "mistral", "--base-url", server.url,
                   "--model", MODEL, "--seed", "7", env={"MISTRAL_API_KEY": TEST_KEY})  # fmt: skip
    errors = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet")["error"].to_list()
    assert code == 0 and all("Unrecognized request argument supplied: random_seed" in e for e in errors)


def test_api_key_env_names_the_variable_the_key_comes_from(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator(api="openai", api_key="vllm-key")
    data = write_pairs(3)
    args = ("--provider", "openai", "--base-url", server.url, "--model", MODEL)
    code, output = _run(data, tmp_path / "run", *args, "--api-key-env", "VLLM_KEY", env={"VLLM_KEY": "vllm-key"})
    assert code == 0, output
    code, output = _run(data, tmp_path / "other", *args, "--api-key-env", "UNSET_JUDGE_KEY")
    assert code == 2 and "set UNSET_JUDGE_KEY" in output and not (tmp_path / "other" / "results").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "openai"], "--provider openai needs --model"),
        (["--provider", "openai", "--model", MODEL, "--transport", "sdk"], "--transport 'sdk' is not one of http"),
        (["--provider", "mistral", "--api-key-env", "NOT A NAME"], "--api-key-env must name an environment variable"),
    ],
)
def test_options_that_cannot_work_with_a_provider_are_one_line(
    write_pairs: Callable[..., Path], tmp_path: Path, args: list[str], message: str
) -> None:
    code, output = _run(write_pairs(2), tmp_path / "run", *args)
    assert code == 2 and output.startswith("error:") and message in output
