"""``--limit`` is reported as a stop, not as the end (issue 29, item 2), and run directories
and reports carry the version of their layout (item 5): an older release's run directory is
read, a newer one is refused with one line saying to upgrade."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from typer.testing import CliRunner

import batchjudge
from batchjudge import RunConfig
from batchjudge.cli import app
from batchjudge.engine.record import RUN_SCHEMA_VERSION
from batchjudge.report.summary import REPORT_SCHEMA_VERSION

runner = CliRunner()


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), terminal_width=400)
    return result.exit_code, result.stdout, result.stderr


def test_limit_500_of_2000_rows_is_not_complete_and_says_the_command_that_goes_on(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    data, out = write_pairs(2000), tmp_path / "run"
    code, _, summary = _cli("run", str(data), "--out", str(out), "--limit", "500", "--quiet")
    assert code == 0, summary
    go_on = f"batchjudge run {data} --out {out}"
    assert f"stopped at --limit: 500 of 2,000 rows have results; go on: {go_on}" in summary
    code, status, _ = _cli("status", str(out))
    assert code == 0 and "complete" not in status
    assert status.splitlines()[0] == f"{out}: stopped at --limit: 500 of 2,000 rows have results (25.0%)"
    assert f"  go on: {go_on}" in status.splitlines()
    meta = json.loads((out / "run.json").read_text())
    assert meta["input_rows"] == 2000 and meta["config"]["limit"] == 500 and meta["counts"]["total"] == 500
    code, _, _ = _cli(*shlex.split(go_on)[1:], "--quiet")  # the command it printed finishes the run
    code, status, _ = _cli("status", str(out))
    assert status.splitlines()[0].startswith(f"{out}: complete — 2,000 of 2,000 rows")


def test_a_limited_run_of_a_frame_says_how_to_go_on_from_python(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = batchjudge.run(RunConfig(inputs=pl.read_parquet(write_pairs(20)), out=out, limit=5))
    assert result.complete and result.limited and result.input_rows == 20
    _, status, _ = _cli("status", str(out))
    assert f"  go on from Python: batchjudge.run(RunConfig(inputs=<the same table>, out='{out}', limit=None" in status


def test_run_json_and_report_json_carry_their_schema_version(write_pairs: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    batchjudge.run(RunConfig(inputs=write_pairs(8), out=out))
    meta = json.loads((out / "run.json").read_text())
    assert meta["schema_version"] == RUN_SCHEMA_VERSION == 1
    code, report, _ = _cli("report", str(out), "--json")
    assert code == 0 and json.loads(report)["schema_version"] == REPORT_SCHEMA_VERSION == 1


def test_a_run_directory_of_the_previous_release_is_read_and_resumed(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    data, out = write_pairs(12), tmp_path / "run"
    batchjudge.run(RunConfig(inputs=[data], out=out, limit=6))
    meta = json.loads((out / "run.json").read_text())
    for key in ("schema_version", "run_id", "parts", "inputs", "input_rows"):  # what the previous release lacked
        meta.pop(key, None)
    (out / "run.json").write_text(json.dumps(meta))
    for part in (out / "results").glob("*.parquet"):  # nor did its parts carry the run's id
        pq.write_table(pq.read_table(part).replace_schema_metadata(None), part)
    code, status, _ = _cli("status", str(out))
    assert code == 0 and "stopped at --limit: 6 rows have results (the inputs may hold more)" in status
    code, report, _ = _cli("report", str(out), "--json")
    assert code == 0 and json.loads(report)["n_rows"] == 6
    resumed = batchjudge.run(RunConfig(inputs=[data], out=out))
    assert resumed.complete and resumed.stats["finished"] == 6
    assert json.loads((out / "run.json").read_text())["schema_version"] == RUN_SCHEMA_VERSION


def test_a_run_directory_from_a_newer_release_is_refused_with_one_line_saying_to_upgrade(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    data, out = write_pairs(6), tmp_path / "run"
    batchjudge.run(RunConfig(inputs=[data], out=out))
    meta = json.loads((out / "run.json").read_text())
    meta["schema_version"] = RUN_SCHEMA_VERSION + 1
    (out / "run.json").write_text(json.dumps(meta))
    before = (out / "run.json").read_bytes()
    for command in (["status", str(out)], ["report", str(out)], ["run", str(data), "--out", str(out), "--quiet"]):
        code, stdout, stderr = _cli(*command)
        lines = (stdout + stderr).strip().splitlines()
        assert code == 2 and len(lines) == 1, (command, lines)
        assert f"schema_version {RUN_SCHEMA_VERSION + 1}" in lines[0] and "upgrade" in lines[0], lines[0]
    assert (out / "run.json").read_bytes() == before  # nothing rewritten
