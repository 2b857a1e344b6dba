"""USB loads from the cookbook's or USB's own files, and its all-consistent defect is repaired loudly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from batchjudge.datasets.usb import UsbLabelsRepaired, build_usb, load_usb, repair_usb
from batchjudge.errors import InputError

COOKBOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"


def _pairs(n: int) -> list[tuple[str, str, str]]:
    """(premise, fixed summary, original summary) for ``n`` annotated sentences."""
    return [(f"Evidence {i}. More evidence {i}.", f"Fixed sentence {i}.", f"Unfixed sentence {i} with a claim.")
            for i in range(n)]


def _write_cookbook_jsonl(path: Path, n: int) -> None:
    lines = [json.dumps({"premise": p, "hypothesis": h, "target": 1}) for p, a, b in _pairs(n) for h in (a, b)]
    path.write_text("\n".join(lines) + "\n")


def test_the_all_consistent_defect_is_detected_and_repaired_from_row_pairs(tmp_path: Path) -> None:
    path = tmp_path / "usb-train.jsonl"
    _write_cookbook_jsonl(path, 5)
    with pytest.warns(UsbLabelsRepaired, match="REPAIRED"):
        table, report = repair_usb(load_usb(path))
    assert table["target"].to_pylist() == [1, 0] * 5
    assert table["hypothesis"].to_pylist()[:2] == ["Fixed sentence 0.", "Unfixed sentence 0 with a claim."]
    assert (report.repaired, report.consistent, report.inconsistent, report.split) == (True, 5, 5, "train")


def test_single_class_rows_not_in_pairs_are_flagged_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "usb-val.jsonl"
    rows = [{"premise": f"doc {i}", "hypothesis": f"s {i}", "target": 1} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table, report = repair_usb(load_usb(path))
    assert table["target"].to_pylist() == [1, 1, 1, 1]
    assert report.single_class_unrepaired and not report.repaired
    assert "no row pairs" in report.message


def test_correctly_labelled_pairs_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "usb-test.jsonl"
    rows = [{"premise": p, "hypothesis": h, "target": t} for p, a, b in _pairs(3) for h, t in ((a, 1), (b, 0))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table, report = repair_usb(load_usb(path))
    assert not report.repaired
    assert table["target"].to_pylist() == [1, 0] * 3


def test_usb_native_labels_are_inverted_and_evidence_lines_joined(tmp_path: Path) -> None:
    folder = tmp_path / "factuality_classification"
    folder.mkdir()
    rows = []
    for i, (_, fixed, original) in enumerate(_pairs(2)):
        for summary, label in ((fixed, 0), (original, 1)):
            rows.append({"id": f"biographies/{i}.json", "summ_idx": 0, "input_lines": [f"Line {i}.", "Second."],
                         "summary_sent": summary, "label": label})
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tables, reports = build_usb([folder])
    table = tables["usb-val"]
    assert table["target"].to_pylist() == [1, 0, 1, 0]
    assert table["premise"].to_pylist()[0] == "Line 0. Second."
    assert table["doc_id"].to_pylist()[0] == "biographies/0.json"
    assert not reports[0].repaired


def test_cookbook_csv_uses_the_article_as_document_and_label_two_as_consistent(tmp_path: Path) -> None:
    path = tmp_path / "usb-val.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "summ_idx", "input_lines", "summary_sent", "label", "source"])
        for p, a, b in _pairs(2):
            for h in (a, b):
                writer.writerow(["companies/x.json", 0, repr([p]), h, 2, p])
    table = load_usb(path)
    assert table["target"].to_pylist() == [1, 1, 1, 1]
    assert set(table["doc_id"].to_pylist()) == {"companies/x.json"}
    assert table["split"].to_pylist()[0] == "val"


def test_a_csv_label_outside_the_cookbook_mapping_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "usb-val.csv"
    path.write_text("id,summ_idx,input_lines,summary_sent,label,source\nd,0,[],s,7,p\n")
    with pytest.raises(InputError, match=r"usb-val.csv:2: label '7'"):
        load_usb(path)


def test_two_files_for_one_split_are_refused(tmp_path: Path) -> None:
    _write_cookbook_jsonl(tmp_path / "usb-train.jsonl", 1)
    _write_cookbook_jsonl(tmp_path / "usb-train-copy.jsonl", 1)
    with pytest.warns(UsbLabelsRepaired), pytest.raises(InputError, match="second file for the USB train"):
        build_usb([tmp_path])


@pytest.mark.skipif(not COOKBOOK.is_dir(), reason="shared cookbook data absent")
def test_the_cookbook_usb_files_repair_to_exactly_balanced_counts() -> None:
    with pytest.warns(UsbLabelsRepaired):
        tables, reports = build_usb([COOKBOOK])
    counts = {r.split: (r.consistent, r.inconsistent, r.repaired) for r in reports}
    assert counts == {"train": (2525, 2525, True), "val": (1334, 1334, True)}
    assert tables["usb-train"].num_rows == 5050 and tables["usb-val"].num_rows == 2668
