"""The rough edges a newcomer met in the second hour (issue 29, item 6), one test each."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import batchjudge
from batchjudge.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env=WIDE, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_dash_h_is_help_for_every_level() -> None:
    for command in ([], ["run"], ["data", "synth"]):
        result = runner.invoke(app, [*command, "-h"], env=WIDE, terminal_width=200)
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_dash_capital_v_prints_the_version() -> None:
    result = runner.invoke(app, ["-V"])
    assert result.exit_code == 0
    assert result.output.startswith("batchjudge ")


@pytest.mark.parametrize("command", [("run",), ("report",), ("compare",), ("status",), ("data", "synth"), ("ft", "launch"), ("emulator",)], ids=" ".join)
def test_placeholders_read_as_words_not_types(command: tuple[str, ...]) -> None:
    text = _help(*command)
    for typed in ("<list[", "<str>", "<int>", "<float>", "<path>", "<bool>", "[OPTIONS] {"):
        assert typed not in text, f"{typed!r} in batchjudge {' '.join(command)} --help"


def test_run_help_names_its_inputs_and_numbers_in_words() -> None:
    text = _help("run")
    assert "Usage: batchjudge run [OPTIONS] PATH…" in text
    assert any("--timeout" in line and "SECONDS" in line for line in text.splitlines())
    assert any("--limit" in line and " N " in line for line in text.splitlines())


def test_the_ray_install_hint_is_shown_whole() -> None:
    assert 'pip install "batchjudge[ray]"' in _help("run")


def test_the_fib_extra_is_enough_for_the_hugging_face_source() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("datasets") for dep in extras["fib"])


def test_dir_of_the_package_shows_only_its_public_names() -> None:
    assert dir(batchjudge) == sorted(batchjudge.__all__)


def test_the_summary_says_tracing_in_words(tmp_path: Path) -> None:
    from batchjudge.cli._progress import tracing_line

    line = tracing_line({"sent": 100, "dropped": 0, "errors": 0, "sampled_out": 0})
    assert line == "100 rows traced, 0 dropped (queue full), 0 errors"


def test_a_local_run_speaks_of_no_server(tmp_path: Path) -> None:
    """The local judge's reply gaps are not a server's stalls: the summary must not say so."""
    from rich.console import Console

    from batchjudge.cli._progress import Money, print_summary
    from batchjudge.engine.config import RunConfig
    from batchjudge.engine.pipeline import RunResult

    config = RunConfig(inputs=["x.parquet"], out=str(tmp_path / "run"), provider="local")
    stats = dict.fromkeys(("finished", "elapsed_s", "rows_per_second", "prompt_tokens", "completion_tokens",
                           "retries", "rate_limited", "server_stalls", "reused"), 0)
    stats.update(server_stalls=3, emulator=False)
    result = RunResult(run_dir=str(tmp_path / "run"), total=10, counts={"done": 10, "ok": 10, "parse_error": 0, "failed": 0},
                       complete=True, stats=stats)
    console = Console(record=True, width=300)
    print_summary(console, result, config, Money(None, batch=False), show_warnings=False)
    assert "server" not in console.export_text()



def test_tables_keep_their_full_width_when_piped(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Piped, rich assumed 80 columns and cut cells to ``ft:local-judge:demo:c2fc…``."""
    from rich.table import Table

    from batchjudge.cli._console import out_console

    monkeypatch.delenv("COLUMNS", raising=False)
    out_console.cache_clear()
    long_name = "ft:local-judge:demo:" + "c2fc" * 30
    table = Table("model", "accuracy")
    table.add_row(long_name, "0.938")
    try:
        out_console().print(table)
    finally:
        out_console.cache_clear()
    assert long_name in capsys.readouterr().out


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped sample judged by the local judge, once for the tests below."""
    base = tmp_path_factory.mktemp("edges")
    data = base / "sample"
    for args in (["data", "sample", "--out", str(data)], ["run", str(data), "--out", str(base / "run"), "-q"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return base


def test_a_local_dry_run_says_its_token_counts_are_not_the_runs(sample_run: Path) -> None:
    """The dry run counted 32,039 prompt tokens "(exact)", the local run then 36,697: say why."""
    result = runner.invoke(app, ["run", str(sample_run / "sample"), "--out", str(sample_run / "dry"), "--dry-run"],
                           env=WIDE, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "estimated at 4 characters" in result.output


def test_a_report_says_why_a_figure_is_absent() -> None:
    """An API judge answering verdicts only: no ROC-AUC, and the report says it had no scores."""
    from batchjudge.report.formatting import quality_rows

    summary = {"n_labelled": 100, "n_scored": 100, "n_with_score": 0, "accuracy": 0.8, "accuracy_all": 0.8,
               "balanced_accuracy": 0.8, "precision": None, "recall": None, "f1": None, "roc_auc": None,
               "brier": None, "ece": None, "pr_auc": None, "pairwise_accuracy": None}
    shown = {name: value for name, value, _ in quality_rows(summary)}
    assert shown["ROC-AUC"] == "– (no scores)"
    assert shown["pairwise accuracy (same document)"] == "– (no pairs)"


def test_compare_says_the_emulator_answers_with_the_local_judge() -> None:
    from rich.console import Console

    from batchjudge.report.terminal import compare_renderable

    run = {"n_ok": 100, "n_rows": 100, "n_total": 100, "model": "m", "cost_usd": None, "latency_ms": {"p95": 1.0},
           "n_labelled": 100, "n_scored": 100, "n_with_score": 100, "accuracy": 0.8, "accuracy_all": 0.8,
           "balanced_accuracy": 0.8, "precision": None, "recall": None, "f1": None, "roc_auc": 0.9,
           "brier": 0.1, "ece": 0.1, "pr_auc": None, "pairwise_accuracy": None}
    comparison = {"runs": [{**run, "run_dir": "runs/zero-shot"}, {**run, "run_dir": "runs/emulated", "emulator": True}],
                  "tests": []}
    console = Console(record=True, width=300)
    console.print(compare_renderable(comparison))
    assert "runs/emulated was answered by the emulator, which answers with the local judge" in console.export_text()
