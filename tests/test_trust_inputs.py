"""Inputs that cannot be read as asked are one line, exit 2, before anything is created: a FIFO
(which would wait for a writer forever), two roles on one column (pyarrow's rename error)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from batchjudge.cli import app


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", *args, "--quiet"])
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def test_a_fifo_as_input_is_one_line_exit_2_and_no_hang(tmp_path):
    fifo = tmp_path / "pairs.parquet"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "batchjudge", "run", str(fifo), "--out", str(tmp_path / "run"), "-q"],
                          capture_output=True, text=True, timeout=60, env=env)
    line = one_error_line(done.stdout + done.stderr)
    assert done.returncode == 2 and str(fifo) in line and "not a regular file (a FIFO)" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("spec", "clash"), [
    ("premise=hypothesis,hypothesis=hypothesis", "premise and hypothesis both read column 'hypothesis'"),
    ("premise=hypothesis", "premise and hypothesis both read column 'hypothesis'"),
    ("id=premise", "premise and id both read column 'premise'"),
])
def test_two_roles_on_one_column_is_one_line_naming_the_option(write_pairs, tmp_path, spec, clash):
    code, output = cli(str(write_pairs(5)), "--out", str(tmp_path / "run"), "--columns", spec)
    line = one_error_line(output)
    assert code == 2 and "--columns" in line and clash in line
    assert not (tmp_path / "run").exists()
