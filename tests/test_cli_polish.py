"""The command line as a newcomer meets it: --version, on/off switches, and errors about paths."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer.main
from report_helpers import result_row, write_run
from typer.testing import CliRunner

from batchjudge.cli import app

runner = CliRunner()


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every leaf command under ``group`` (typer's own click: groups have ``commands``)."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


ALL_COMMANDS = sorted(_commands(typer.main.get_command(app)))


def test_version_prints_the_installed_version_and_exits_0() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"batchjudge {version('batchjudge')}"


def test_every_command_is_covered() -> None:
    assert {" ".join(c) for c in ALL_COMMANDS} >= {
        "run", "report", "compare", "emulator", "data fib", "data synth", "data check", "ft export",
    }  # fmt: skip


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_no_switch_is_shown_as_taking_a_bool_value(command: tuple[str, ...]) -> None:
    """``--overwrite <bool>`` made people write ``--overwrite true`` (read as an input path)."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    options = [line for line in result.output.splitlines() if re.search(r"│\s+--", line)]
    assert options, result.output
    shown_as_bool = [line for line in options if "<bool>" in line and "--help" not in line]
    assert shown_as_bool == []


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_switch_has_its_no_form(command: tuple[str, ...]) -> None:
    cli: Any = typer.main.get_command(app)
    for name in command:
        cli = cli.commands[name]
    switches = [p for p in cli.params if getattr(p, "is_bool_flag", False)]
    for switch in switches:
        assert switch.secondary_opts == [f"--no-{switch.opts[0][2:]}"], (command, switch.opts)


def test_the_no_form_of_a_switch_works(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [[result_row("a", 1, 1, 0.9)]])
    plain = runner.invoke(app, ["report", str(run), "--no-json", "--resamples", "100"])
    assert plain.exit_code == 0, plain.output
    assert not plain.output.lstrip().startswith("{")
    as_json = runner.invoke(app, ["report", str(run), "--json", "--resamples", "100"])
    assert as_json.output.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "fib", "--source", "{tmp}/nowhere", "--out", "{tmp}/out"], "nowhere: does not exist"),
        (["data", "usb", "--source", "{tmp}/nowhere", "--out", "{tmp}/out"], "nowhere: does not exist"),
        (["data", "check", "{tmp}/nowhere.parquet"], "nowhere.parquet: does not exist"),
        (["report", "{tmp}/nowhere"], "nowhere: does not exist"),
        (["compare", "{tmp}/nowhere", "{tmp}/run"], "nowhere: does not exist"),
        (["report", "{tmp}/run", "--prices", "{tmp}/nowhere.json"], "nowhere.json: price file does not exist"),
        (["report", "{tmp}/run", "--html", "{tmp}/nowhere/r.html"], "folder {tmp}/nowhere does not exist"),
        (["ft", "export", "{tmp}/nowhere.parquet", "--out", "{tmp}/t.jsonl"], "nowhere.parquet: does not exist"),
    ],
)
def test_a_missing_path_is_one_line_saying_it_does_not_exist(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    write_run(tmp_path / "run", [[result_row("a", 1, 1, 0.9)]])
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args], terminal_width=400)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert expected.format(tmp=tmp_path) in lines[0]


def test_a_dataset_written_below_a_file_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["data", "sample", "--out", str(blocker / "out")], terminal_width=400)
    assert result.exit_code == 2
    assert result.output.startswith("error:") and "cannot write (Not a directory)" in result.output
