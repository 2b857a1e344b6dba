"""Bad input: exit 2 with one clear line naming the file/row/column, and no run left behind."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from batchjudge import JudgeReply, MockProvider, RunConfig, run
from batchjudge.cli import app


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", *args, "--quiet"])
    return result.exit_code, result.output


def refuses(tmp_path: Path, inputs: list[str], *expected: str, extra: tuple[str, ...] = ()) -> None:
    out = tmp_path / "run"
    code, output = cli(*inputs, "--out", str(out), *extra)
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1, output
    assert lines[0].startswith("error:")
    for fragment in expected:
        assert fragment in lines[0], output
    assert not out.exists(), "a refused run must leave nothing behind"


def test_a_missing_file_is_refused_naming_it(tmp_path):
    refuses(tmp_path, [str(tmp_path / "nope.parquet")], "nope.parquet", "no such file")


def test_a_file_that_is_not_what_its_name_says_is_refused(tmp_path):
    fake = tmp_path / "data.parquet"
    fake.write_text("premise,hypothesis\na,b\n")
    refuses(tmp_path, [str(fake)], "data.parquet", "not a Parquet file")


def test_a_parquet_file_named_jsonl_is_refused(tmp_path, write_pairs):
    path = write_pairs(3)
    renamed = path.with_suffix(".jsonl")
    path.rename(renamed)
    refuses(tmp_path, [str(renamed)], "pairs.jsonl", "Parquet")


def test_an_empty_dataset_is_refused(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"premise": pa.array([], pa.string()), "hypothesis": pa.array([], pa.string())}), path)
    refuses(tmp_path, [str(path)], "empty.parquet", "empty")


def test_a_missing_column_is_refused_naming_it_and_the_mapping_option(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc": ["a"], "hypothesis": ["b"]}), path)
    refuses(tmp_path, [str(path)], "docs.parquet", "'premise'", "--columns")


def test_a_mapped_column_is_used(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc": ["a b c"], "summary": ["a b"], "label": [1]}), path)
    provider = MockProvider(lambda r: JudgeReply('{"consistency": 1}'))
    result = run(RunConfig(inputs=[path], out=tmp_path / "run", columns="premise=doc,hypothesis=summary,target=label"),
                 provider=provider)
    assert result.complete and provider.calls[0].premise == "a b c"


def test_a_column_of_the_wrong_type_is_refused(tmp_path):
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"premise": [1, 2], "hypothesis": ["a", "b"]}), path)
    refuses(tmp_path, [str(path)], "typed.parquet", "'premise'", "int64")


def test_a_target_that_is_text_is_refused(tmp_path):
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"premise": ["a"], "hypothesis": ["b"], "target": ["yes"]}), path)
    refuses(tmp_path, [str(path)], "labels.parquet", "'target'")


def test_unreadable_jsonl_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('["not", "an", "object"]\n')
    refuses(tmp_path, [str(path)], "rows.jsonl")


def test_bad_options_are_refused_before_anything_is_written(tmp_path, write_pairs):
    refuses(tmp_path, [str(write_pairs(2))], "--concurrency", extra=("--concurrency", "0"))


def test_a_bad_row_fails_alone_and_the_run_goes_on(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [
        {"premise": "Doc one.", "hypothesis": "One.", "target": 1},
        {"premise": None, "hypothesis": "Two.", "target": 0},
        {"premise": "Doc three.", "hypothesis": "   ", "target": 1},
        {"premise": "Doc four.", "hypothesis": "Four.", "target": 7},
        {"premise": "Doc five.", "hypothesis": "Five.", "target": 0},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    provider = MockProvider(lambda r: JudgeReply('{"consistency": 0}'))
    result = run(RunConfig(inputs=[path], out=tmp_path / "run"), provider=provider)
    df = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet")
    assert result.complete and df.height == 5
    assert len(provider.calls) == 2
    failed = df.filter(pl.col("status") == "failed")["error"].to_list()
    assert sorted(failed) == sorted([
        "InputError: rows.jsonl row 1: null 'premise' (premise)",
        "InputError: rows.jsonl row 2: empty 'hypothesis' (hypothesis)",
        "InputError: rows.jsonl row 3: 'target' is 7, expected 0 or 1",
    ])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_jsonl_inputs_are_judged_like_parquet(tmp_path, fmt):
    path = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        path.write_text("premise,hypothesis,target\nThe sky is blue.,The sky is blue.,1\n")
    else:
        path.write_text('{"premise": "The sky is blue.", "hypothesis": "The sky is blue.", "target": 1}\n')
    result = run(RunConfig(inputs=[path], out=tmp_path / "run"),
                 provider=MockProvider(lambda r: JudgeReply('{"consistency": 1}')))
    assert result.complete and result.counts["ok"] == 1


def test_a_directory_of_shards_and_a_glob_name_the_same_rows(tmp_path, write_pairs):
    for i in range(3):
        write_pairs(5, name=f"shards/part-{i}.parquet", start=5 * i)
    handler = MockProvider(lambda r: JudgeReply('{"consistency": 1}'))
    by_dir = run(RunConfig(inputs=[tmp_path / "shards"], out=tmp_path / "a"), provider=handler)
    by_glob = run(RunConfig(inputs=[str(tmp_path / "shards" / "*.parquet")], out=tmp_path / "b"), provider=handler)
    ids_a = pl.read_parquet(tmp_path / "a" / "results" / "*.parquet")["row_id"].sort().to_list()
    ids_b = pl.read_parquet(tmp_path / "b" / "results" / "*.parquet")["row_id"].sort().to_list()
    assert by_dir.total == by_glob.total == 15
    assert ids_a == ids_b and len(set(ids_a)) == 15


def test_the_label_sanity_check_runs_before_the_evaluation(tmp_path):
    path = tmp_path / "one-class.parquet"
    pq.write_table(pa.table({"premise": ["a b", "c d", "a b"], "hypothesis": ["a", "c", "a"], "target": [1, 1, 1]}), path)
    result = run(RunConfig(inputs=[path], out=tmp_path / "run"),
                 provider=MockProvider(lambda r: JudgeReply('{"consistency": 1}')))
    codes = [w.split(":")[0] for w in result.warnings]
    assert codes == ["single_class", "duplicate_rows"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["warnings"] == result.warnings
