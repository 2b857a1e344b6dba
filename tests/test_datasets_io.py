"""Dataset files: cookbook files load into the fixed schema; bad lines are named; writes are atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchjudge.datasets.cookbook import guess_split, load_cookbook
from batchjudge.datasets.io import iter_dataset_batches, write_dataset
from batchjudge.datasets.schema import DATASET_SCHEMA, stable_id
from batchjudge.errors import InputError


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cookbook_jsonl_loads_with_premise_hash_documents_and_split_from_the_name(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "fib-val.jsonl", [
        {"premise": "Doc one.", "hypothesis": "A.", "target": 1},
        {"premise": "Doc one.", "hypothesis": "B.", "target": 0},
    ])
    table = load_cookbook(path)
    assert table.schema.equals(DATASET_SCHEMA)
    assert table["doc_id"].to_pylist() == [stable_id("Doc one.")] * 2
    assert table["split"].to_pylist() == ["val", "val"]
    assert table["source"].to_pylist() == ["fib-xsum", "fib-xsum"]


def test_row_ids_are_stable_across_loads_and_files(tmp_path: Path) -> None:
    rows = [{"premise": "Doc.", "hypothesis": "A.", "target": 1}]
    first = load_cookbook(_jsonl(tmp_path / "a.jsonl", rows))["id"].to_pylist()
    second = load_cookbook(_jsonl(tmp_path / "b-train.jsonl", rows))["id"].to_pylist()
    assert first == second


def test_a_missing_column_is_named_with_the_file(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "x.jsonl", [{"premise": "Doc.", "hypothesis": "A."}])
    with pytest.raises(InputError, match=r"x.jsonl: missing column 'target'"):
        load_cookbook(path)


def test_a_malformed_line_is_named_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"premise": "a", "hypothesis": "b", "target": 1}\n{"premise": \n')
    with pytest.raises(InputError, match=r"x.jsonl:2: not valid JSON"):
        load_cookbook(path)


def test_a_label_other_than_zero_or_one_is_refused(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "x.jsonl", [{"premise": "a", "hypothesis": "b", "target": 3}])
    with pytest.raises(InputError, match=r"x.jsonl:1: label 3 is not one of \[0, 1\]"):
        load_cookbook(path)


def test_split_names_are_read_from_file_names() -> None:
    assert guess_split(Path("usb-validation.csv")) == "val"
    assert guess_split(Path("train.jsonl")) == "train"
    assert guess_split(Path("mydata.jsonl")) == "test"


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    table = load_cookbook(_jsonl(tmp_path / "d.jsonl", [{"premise": "a", "hypothesis": "b", "target": 1}]))
    path = write_dataset(table, tmp_path / "out" / "d.parquet")
    assert pq.read_table(path).equals(table)
    assert [p.name for p in path.parent.iterdir()] == ["d.parquet"]


def test_write_refuses_a_table_outside_the_schema(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not follow the dataset schema"):
        write_dataset(pa.table({"premise": ["a"]}), tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


def test_batches_stream_only_the_requested_columns_that_exist(tmp_path: Path) -> None:
    table = load_cookbook(_jsonl(tmp_path / "d.jsonl", [{"premise": "a", "hypothesis": "b", "target": 1}]))
    path = write_dataset(table, tmp_path / "d.parquet")
    (batch,) = iter_dataset_batches(path, columns=["target", "nope"])
    assert batch.schema.names == ["target"]
