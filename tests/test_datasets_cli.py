"""``batchjudge data ...`` writes the datasets, reports repairs and label problems, exits 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from batchjudge.cli.data import data_app
from batchjudge.datasets.schema import DATASET_SCHEMA

runner = CliRunner()


def _usb_defect_file(path: Path, pairs: int) -> None:
    rows = [{"premise": f"Evidence {i}.", "hypothesis": f"Sentence {i} {v}.", "target": 1}
            for i in range(pairs) for v in ("fixed", "original")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_sample_command_writes_the_sample_as_parquet(tmp_path: Path) -> None:
    result = runner.invoke(data_app, ["sample", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "sample.parquet")
    assert table.num_rows == 100
    assert table.schema.names[:7] == DATASET_SCHEMA.names


def test_usb_command_repairs_and_warns(tmp_path: Path) -> None:
    source = tmp_path / "cookbook"
    source.mkdir()
    _usb_defect_file(source / "usb-train.jsonl", 3)
    result = runner.invoke(data_app, ["usb", "--source", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "REPAIRED" in result.output
    assert pq.read_table(tmp_path / "out" / "usb-train.parquet")["target"].to_pylist() == [1, 0] * 3


def test_check_names_the_defect_and_strict_mode_fails(tmp_path: Path) -> None:
    path = tmp_path / "usb-train.jsonl"
    _usb_defect_file(path, 2)
    relaxed = runner.invoke(data_app, ["check", str(path)])
    assert relaxed.exit_code == 0
    assert "[single_class]" in relaxed.output
    strict = runner.invoke(data_app, ["check", str(path), "--strict"])
    assert strict.exit_code == 1


def test_check_on_clean_data_says_so(tmp_path: Path) -> None:
    runner.invoke(data_app, ["sample", "--out", str(tmp_path)])
    result = runner.invoke(data_app, ["check", str(tmp_path), "--strict"])
    assert result.exit_code == 0
    assert "no label problems found in 100 rows" in result.output


def test_bad_input_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(data_app, ["check", str(tmp_path / "missing.parquet")])
    assert result.exit_code == 2
    assert "missing.parquet: does not exist" in result.output
    result = runner.invoke(data_app, ["fib", "--source", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no binary_choice-using_" in result.output


def test_synth_command_writes_the_requested_rows_in_shards(tmp_path: Path) -> None:
    result = runner.invoke(data_app, ["synth", "--rows", "200", "--shards", "2", "--out", str(tmp_path), "--seed", "3"])
    assert result.exit_code == 0, result.output
    parts = sorted(tmp_path.glob("part-*.parquet"))
    assert len(parts) == 2
    assert sum(pq.read_metadata(p).num_rows for p in parts) == 200
