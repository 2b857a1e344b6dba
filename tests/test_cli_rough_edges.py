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
