"""``--trace weave:...`` without a W&B login: one plain warning, no prompt, no waiting."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from test_tracing import row

from batchjudge.adapters.tracing import make_tracer, trace_op
from batchjudge.adapters.tracing._login import weave_login_problem
from batchjudge.datasets.io import write_dataset
from batchjudge.datasets.sample import load_sample

_LOGIN_VARIABLES = (
    "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WEAVE_DISABLED",
)  # fmt: skip


@pytest.fixture
def no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home without ~/.netrc or wandb settings, and no W&B variables; returns the home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    for name in _LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def _netrc(home: Path, host: str) -> None:
    path = home / ".netrc"
    path.write_text(f"machine {host}\n  login user\n  password not-a-real-key\n")
    path.chmod(0o600)


def test_without_key_or_netrc_entry_the_problem_names_the_host_and_the_fix(no_login: Path) -> None:
    problem = weave_login_problem("acme/judges")
    assert problem is not None
    assert "weave:acme/judges" in problem and "api.wandb.ai" in problem
    assert "WANDB_API_KEY" in problem and "wandb login" in problem


def test_an_api_key_in_the_environment_is_a_login(no_login: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert weave_login_problem("acme/judges") is None


def test_a_netrc_entry_counts_only_for_the_wandb_host_in_use(
    no_login: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _netrc(no_login, "api.wandb.ai")
    assert weave_login_problem("acme/judges") is None
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    assert "wandb.example.com" in (weave_login_problem("acme/judges") or "")
    _netrc(no_login, "wandb.example.com")
    assert weave_login_problem("acme/judges") is None


def test_the_host_comes_from_wandbs_settings_file_when_the_environment_names_none(no_login: Path) -> None:
    settings = no_login / ".config" / "wandb" / "settings"
    settings.parent.mkdir(parents=True)
    settings.write_text("[default]\nbase_url = https://wandb.internal.example\n")
    assert "wandb.internal.example" in (weave_login_problem("acme/judges") or "")
    _netrc(no_login, "wandb.internal.example")
    assert weave_login_problem("acme/judges") is None


def test_weave_disabled_needs_no_login(no_login: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVE_DISABLED", "true")
    assert weave_login_problem("acme/judges") is None


def test_the_tracer_warns_once_and_counts_every_row_as_a_trace_error(
    no_login: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> dict[str, int]:
        tracer = make_tracer("weave:acme/judges", run_name="r", run_config={})
        for i in range(20):
            tracer.submit(row(i))
        return await tracer.aclose({"n_rows": 20})

    with caplog.at_level(logging.WARNING, logger="batchjudge"):
        counters = anyio.run(run)
    assert counters == {"sent": 0, "dropped": 0, "errors": 21, "sampled_out": 0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no W&B login" in warnings[0]


def test_an_op_traced_without_a_login_warns_and_keeps_its_result(
    no_login: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="batchjudge"):
        with trace_op("weave:acme/judges", "batchjudge.finetune.export", {"rows": 3}) as op:
            op.output = {"lines": 3}
    assert op.output == {"lines": 3}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no W&B login" in warnings[0]


def test_a_cli_run_without_a_login_prints_one_plain_warning_and_no_login_prompt(no_login: Path) -> None:
    data = no_login.parent / "data"
    write_dataset(load_sample(), data / "sample.parquet")
    env = {**os.environ, "COLUMNS": "300"}
    result = subprocess.run(
        [sys.executable, "-m", "batchjudge", "run", str(data), "--out", str(no_login.parent / "run"),
         "--trace", "weave:acme/judges", "--quiet"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    everything = result.stdout + result.stderr
    assert "\x1b" not in everything
    assert "API key" not in everything and "Paste" not in everything
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "weave:acme/judges is off: no W&B login" in warnings[0]
    assert "101 errors" in everything  # every row and the run's evaluation, untraced
