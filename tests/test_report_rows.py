"""``batchjudge report RUN --rows FILE``: every result joined with its input row, as a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_helpers import result_row, write_run
from typer.testing import CliRunner

from batchjudge.cli import app
from batchjudge.report import load_run
from batchjudge.report.rows import JoinedRows, write_rows

runner = CliRunner()

PAIRS = [
    ("d1", "The ferry runs hourly from Cowes.", "The ferry runs hourly.", 1),
    ("d1", "The ferry runs hourly from Cowes.", "The ferry runs daily.", 0),
    ("d2", "Rain fell in Leeds on Monday.", "It rained in Leeds.", 1),
    ("d2", "Rain fell in Leeds on Monday.", "It snowed in Leeds.", 0),
    ("d3", "The council cut 40 jobs.", "The council cut 400 jobs.", 0),
]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _inputs(tmp_path: Path) -> Path:
    records = [
        {"id": f"r{i}", "doc_id": doc, "premise": p, "hypothesis": h, "target": t}
        for i, (doc, p, h, t) in enumerate(PAIRS)
    ]
    return _write_jsonl(tmp_path / "pairs.jsonl", records)


def _read(path: Path) -> pl.DataFrame:
    readers = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".jsonl": pl.read_ndjson}
    return readers[path.suffix](path)


@pytest.fixture
def judged(tmp_path: Path) -> Path:
    """A real run of the local judge over five labelled pairs (the engine's own row keys)."""
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(_inputs(tmp_path)), "--out", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_rows_file_holds_each_result_beside_its_input_row_in_input_order(
    judged: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"rows{suffix}"
    result = runner.invoke(app, ["report", str(judged), "--rows", str(out), "--resamples", "100"])
    assert result.exit_code == 0, result.output
    assert f"rows: 5 written to {out}" in result.output
    rows = _read(out)
    assert rows["row_id"].to_list() == [f"r{i}" for i in range(5)]
    assert rows.columns[:5] == ["row_id", "premise", "hypothesis", "target", "doc_id"]
    assert rows["premise"].to_list() == [p for _, p, _, _ in PAIRS]
    assert rows["hypothesis"].to_list() == [h for _, _, h, _ in PAIRS]
    assert rows["doc_id"].to_list() == [d for d, _, _, _ in PAIRS]
    results = load_run(judged).results.sort("row_id")
    assert rows["verdict"].to_list() == results["verdict"].to_list()
    assert rows["status"].to_list() == ["ok"] * 5
    assert rows["correct"].to_list() == [v == t for v, t in zip(rows["verdict"], rows["target"], strict=True)]
    assert rows["raw_response"].null_count() == 0  # the replies as received are there too


def test_parquet_rows_keep_the_result_types_so_other_tools_read_them_as_they_are(
    judged: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rows.parquet"
    assert runner.invoke(app, ["report", str(judged), "--rows", str(out)]).exit_code == 0
    schema = pq.read_schema(out)
    assert schema.field("target").type == pa.int8() and schema.field("verdict").type == pa.int8()
    assert schema.field("correct").type == pa.bool_() and schema.field("score").type == pa.float64()
    assert schema.field("attempts").type == pa.int32() and schema.field("premise").type == pa.string()
    duckdb = pytest.importorskip("duckdb")
    counts = duckdb.sql(f"select correct, count(*) from '{out}' group by correct order by correct").fetchall()
    assert sum(n for _, n in counts) == 5
    pandas = pytest.importorskip("pandas")
    assert str(pandas.read_parquet(out)["target"].dtype) == "int8"


def test_a_repeated_input_id_joins_its_result_once(tmp_path: Path) -> None:
    inputs = _write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "premise": "P a", "hypothesis": "H a", "target": 1},
        {"id": "b", "premise": "P b", "hypothesis": "H b", "target": 0},
        {"id": "a", "premise": "P a", "hypothesis": "H a", "target": 1},
    ])  # fmt: skip
    run = write_run(tmp_path / "run", [[result_row("a", 1, 1, 0.9), result_row("b", 0, 1, 0.6)]],
                    {"fingerprint": {}, "config": {"inputs": [str(inputs)]}})  # fmt: skip
    out = tmp_path / "rows.parquet"
    assert write_rows(load_run(run), out) == 2
    rows = pl.read_parquet(out)
    assert rows["row_id"].to_list() == ["a", "b"]
    assert rows["correct"].to_list() == [True, False]


def test_mapped_columns_are_followed_and_a_clashing_input_column_gets_an_input_prefix(tmp_path: Path) -> None:
    inputs = _write_jsonl(tmp_path / "in.jsonl", [
        {"uid": "x", "doc": "Doc x", "summary": "Sum x", "label": 1, "status": "draft", "pair": 7},
    ])  # fmt: skip
    columns = "premise=doc,hypothesis=summary,target=label,id=uid"
    run = write_run(tmp_path / "run", [[result_row("x", 1, 0, 0.2)]],
                    {"fingerprint": {}, "config": {"inputs": [str(inputs)], "columns": columns}})  # fmt: skip
    out = tmp_path / "rows.jsonl"
    write_rows(load_run(run), out)
    (row,) = pl.read_ndjson(out).to_dicts()
    assert (row["premise"], row["hypothesis"], row["row_id"]) == ("Doc x", "Sum x", "x")
    assert row["input_status"] == "draft" and row["status"] == "ok" and row["pair"] == 7
    assert "doc" not in row and "uid" not in row and row["correct"] is False


def test_only_input_columns_every_file_shares_are_carried(tmp_path: Path) -> None:
    first = _write_jsonl(tmp_path / "a.jsonl", [{"id": "a", "premise": "P", "hypothesis": "H", "group": "g1", "extra": 1}])
    second = _write_jsonl(tmp_path / "b.jsonl", [{"id": "b", "premise": "P", "hypothesis": "H", "group": "g2"}])
    run = write_run(tmp_path / "run", [[result_row("a", None, 1), result_row("b", None, 0)]],
                    {"fingerprint": {}, "config": {"inputs": [str(first), str(second)]}})  # fmt: skip
    joined = JoinedRows(load_run(run))
    assert "group" in joined.schema.names and "extra" not in joined.schema.names
    assert [t.num_rows for t in joined.tables()] == [1, 1]


def test_inputs_that_are_gone_exit_2_in_one_line_and_write_no_file(judged: Path, tmp_path: Path) -> None:
    (tmp_path / "pairs.jsonl").unlink()
    out = tmp_path / "rows.parquet"
    result = runner.invoke(app, ["report", str(judged), "--rows", str(out)], terminal_width=400)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "inputs are not readable here" in lines[0] and "pairs.jsonl" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".rows*"))


def test_results_without_an_input_row_exit_2_and_write_no_file(judged: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "pairs.jsonl"
    inputs.write_text("".join(inputs.read_text().splitlines(keepends=True)[:3]))  # edited after the run
    out = tmp_path / "rows.csv"
    result = runner.invoke(app, ["report", str(judged), "--rows", str(out)], terminal_width=400)
    assert result.exit_code == 2
    assert "2 of 5 results have no row in the run's inputs" in result.output
    assert not out.exists() and not list(tmp_path.glob(".rows*"))


def test_a_partial_run_writes_the_rows_that_have_results_and_says_n_of_m(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    meta = {"fingerprint": {}, "config": {"inputs": [str(inputs)]},
            "counts": {"ok": 2, "parse_error": 0, "failed": 0, "done": 2, "total": 5}}  # fmt: skip
    run = write_run(tmp_path / "run", [[result_row("r0", 1, 1, 0.9), result_row("r3", 0, 0, 0.1)]], meta)
    out = tmp_path / "rows.parquet"
    result = runner.invoke(app, ["report", str(run), "--rows", str(out), "--resamples", "100"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "partial run: 2 of 5 rows have results" in result.output
    assert pl.read_parquet(out)["row_id"].to_list() == ["r0", "r3"]


@pytest.mark.parametrize(("name", "message"), [("rows.xlsx", "unknown table format '.xlsx'"),
                                               ("missing/rows.csv", "does not exist")])  # fmt: skip
def test_a_rows_path_that_cannot_work_is_refused_before_any_work(
    judged: Path, tmp_path: Path, name: str, message: str
) -> None:
    result = runner.invoke(app, ["report", str(judged), "--rows", str(tmp_path / name)], terminal_width=400)
    assert result.exit_code == 2 and message in result.output
    assert "Quality" not in result.output  # nothing was reported before the refusal


def test_json_stays_one_object_on_stdout_while_rows_are_written(judged: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.parquet"
    result = CliRunner().invoke(app, ["report", str(judged), "--json", "--rows", str(out), "--resamples", "100"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["n_rows"] == 5
    assert "rows: 5 written" in result.stderr
