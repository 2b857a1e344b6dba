"""The label-sanity check names each kind of label problem, streams, and stays quiet on clean data."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from batchjudge.datasets.cookbook import load_cookbook
from batchjudge.datasets.sanity import LabelChecker, SanityWarning, check_labels

COOKBOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"


def _rows(*rows: tuple[str, str, int | None, str]) -> pa.Table:
    """Rows of (doc, summary, target, split); the premise is the document's text."""
    return pa.table({
        "doc_id": [r[0] for r in rows],
        "premise": [f"text of {r[0]}" for r in rows],
        "hypothesis": [r[1] for r in rows],
        "target": pa.array([r[2] for r in rows], pa.int8()),
        "split": [r[3] for r in rows],
    })


CLEAN = _rows(("a", "x", 1, "train"), ("a", "y", 0, "train"), ("b", "x", 1, "val"), ("b", "z", 0, "val"))


def _codes(warnings: list[SanityWarning]) -> list[str]:
    return [w.code for w in warnings]


def test_clean_balanced_split_data_raises_no_warning() -> None:
    assert check_labels(CLEAN) == []


def test_single_class_labels_are_named() -> None:
    table = _rows(("a", "x", 1, "train"), ("b", "y", 1, "train"))
    (warning,) = check_labels(table)
    assert warning.code == "single_class"
    assert "all 2 labelled rows have target=1 (consistent)" in warning.message


def test_a_single_class_source_is_named_even_when_mixed_with_a_balanced_one() -> None:
    usb = _rows(("u1", "x", 1, "train"), ("u1", "y", 1, "train")).append_column("source", pa.array(["usb"] * 2))
    fib = CLEAN.append_column("source", pa.array(["fib-xsum"] * 4))
    (warning,) = check_labels(pa.concat_tables([fib, usb]))
    assert warning.code == "single_class"
    assert warning.message.startswith("source 'usb': all 2 labelled rows have target=1")


def test_repeated_pairs_are_counted_and_located() -> None:
    table = _rows(("a", "x", 1, "train"), ("a", "y", 0, "train"), ("a", "x", 1, "train"), ("a", "x", 1, "train"))
    (warning,) = check_labels(table)
    assert (warning.code, warning.count) == ("duplicate_rows", 2)
    assert "row 0 and row 2" in warning.message


def test_one_pair_with_both_labels_is_a_conflict() -> None:
    table = _rows(("a", "x", 1, "train"), ("a", "y", 0, "train"), ("a", "x", 0, "train"))
    warnings = check_labels(table)
    assert _codes(warnings) == ["duplicate_rows", "conflicting_labels"]
    assert warnings[1].count == 1


def test_a_document_in_two_splits_is_a_leak_named_with_both_splits() -> None:
    table = _rows(("a", "x", 1, "train"), ("a", "y", 0, "val"), ("b", "z", 1, "val"), ("b", "w", 0, "val"))
    (warning,) = check_labels(table)
    assert (warning.code, warning.count) == ("split_leak", 1)
    assert "'train' (row 0) and 'val' (row 1)" in warning.message


def test_rows_without_labels_beside_labelled_ones_are_reported() -> None:
    table = _rows(("a", "x", 1, "train"), ("a", "y", 0, "train"), ("b", "z", None, "train"))
    assert _codes(check_labels(table)) == ["missing_labels"]


def test_without_split_or_target_columns_those_checks_are_off() -> None:
    bad = _rows(("a", "x", 1, "train"), ("a", "y", 1, "val"))
    assert _codes(check_labels(bad)) == ["single_class", "split_leak"]
    assert check_labels(bad.drop_columns(["split", "target"])) == []


def test_without_a_group_column_the_premise_stands_for_the_document() -> None:
    leaking = _rows(("a", "x", 1, "train"), ("a", "y", 0, "val")).drop_columns(["doc_id"])
    (warning,) = check_labels(leaking)
    assert warning.code == "split_leak"
    assert "documents (premise)" in warning.message


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 7])
def test_streaming_in_batches_finds_exactly_what_one_table_finds(batch_rows: int) -> None:
    table = pa.concat_tables([
        _rows(("a", "x", 1, "train"), ("a", "x", 0, "train"), ("b", "y", 1, "train")),
        _rows(("b", "q", 0, "val"), ("c", "x", 1, "val"), ("a", "x", 1, "val"), ("c", "r", None, "val")),
    ])
    whole = check_labels(table)
    assert _codes(whole) == ["missing_labels", "duplicate_rows", "conflicting_labels", "split_leak"]
    assert check_labels(iter(table.to_batches(max_chunksize=batch_rows))) == whole


def test_origins_turn_row_numbers_into_file_positions() -> None:
    checker = LabelChecker()
    checker.update(_rows(("a", "x", 1, "train"), ("a", "y", 0, "train")), origin="train.parquet")
    checker.update(_rows(("a", "z", 1, "val"), ("b", "y", 0, "val")), origin="val.parquet")
    (warning,) = checker.finish()
    assert "'train' (train.parquet row 0) and 'val' (val.parquet row 0)" in warning.message


@pytest.mark.skipif(not COOKBOOK.is_dir(), reason="shared cookbook data absent")
def test_the_cookbook_usb_defect_is_caught_as_single_class() -> None:
    (warning,) = check_labels(load_cookbook(COOKBOOK / "usb-train.jsonl"))
    assert warning.code == "single_class"
    assert warning.count == 5050
