"""FIB is built exactly as the cookbook built it: explode, dedupe, grouped split, balance."""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from batchjudge.cli import app
from batchjudge.datasets.cookbook import load_cookbook
from batchjudge.datasets.fib import build_fib, explode_fib, fib_raw_files
from batchjudge.datasets.io import write_dataset
from batchjudge.errors import ConfigError, InputError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RAW_XSUM = DATA / "fib" / "xsum"
COOKBOOK = DATA / "cookbook"
_MODELS = ("t5-large", "bart-base", "pegasus")  # written out of name order on purpose


def _write_raw(folder: Path, n_articles: int) -> None:
    """A tiny raw-FIB folder: each article has one reference and 1-3 distractors per model.

    Some distractors repeat across models (and carry stray whitespace) so deduplication
    matters, and article sizes vary so the stratified split has several strata.
    """
    folder.mkdir(parents=True)
    for m, model in enumerate(_MODELS):
        lines = []
        for a in range(n_articles):
            if m >= 1 + a % 3:
                continue
            correct = f"Reference summary of article {a}."
            distractor = f" Wrong summary {a}-{m % 2}. "
            choices = [distractor, correct] if (a + m) % 2 else [correct, distractor]
            lines.append({"id": f"{1000 + a}", "input": f"Article {a} text.", "correct_choice": correct,
                          "list_choices": choices, "lbl": choices.index(correct)})
        path = folder / f"binary_choice-using_{model}_distractors.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_explode_labels_the_correct_choice_and_drops_repeated_pairs() -> None:
    records = [
        {"id": "1", "input": "doc", "correct_choice": "good", "list_choices": [" bad", "good"]},
        {"id": "1", "input": "doc", "correct_choice": "good", "list_choices": ["good", "bad "]},
        {"id": "1", "input": "doc", "correct_choice": "good", "list_choices": ["worse", "good"]},
    ]
    table = explode_fib(records, source="fib-xsum")
    assert table["hypothesis"].to_pylist() == ["bad", "good", "worse"]
    assert table["target"].to_pylist() == [0, 1, 0]
    assert set(table["doc_id"].to_pylist()) == {"1"}


def test_build_on_a_raw_layout_fixture_splits_by_article_and_balances(tmp_path: Path) -> None:
    _write_raw(tmp_path / "xsum", n_articles=60)
    built = build_fib(tmp_path)
    assert set(built) == {"fib-xsum-train", "fib-xsum-val"}
    train, val = built["fib-xsum-train"], built["fib-xsum-val"]
    assert set(train["doc_id"].to_pylist()).isdisjoint(val["doc_id"].to_pylist())
    assert len(set(val["doc_id"].to_pylist())) == 11  # sklearn rounds the test share up
    for table, split in ((train, "train"), (val, "val")):
        per_doc = collections.Counter(zip(table["doc_id"].to_pylist(), table["target"].to_pylist(), strict=True))
        assert set(per_doc.values()) == {1}
        assert table.num_rows == 2 * len({d for d, _ in per_doc})
        assert set(table["split"].to_pylist()) == {split}
        assert set(table["source"].to_pylist()) == {"fib-xsum"}
    # Files are read in name order, so where bart-base has a distractor (articles with
    # a % 3 != 0) it is the one kept, not the t5-large one listed first in _MODELS.
    for table in (train, val):
        for doc, summary, target in zip(table["doc_id"].to_pylist(), table["hypothesis"].to_pylist(),
                                        table["target"].to_pylist(), strict=True):
            if target == 0:
                assert summary.endswith("-1." if (int(doc) - 1000) % 3 else "-0.")


def test_files_are_read_in_name_order_whatever_the_folder_listing(tmp_path: Path) -> None:
    _write_raw(tmp_path / "xsum", n_articles=3)
    files = fib_raw_files(tmp_path)["xsum"]
    assert [f.name for f in files] == [
        "binary_choice-using_bart-base_distractors.jsonl",
        "binary_choice-using_pegasus_distractors.jsonl",
        "binary_choice-using_t5-large_distractors.jsonl",
    ]


def test_a_folder_without_fib_files_is_a_clear_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no binary_choice-using_"):
        fib_raw_files(tmp_path)


def test_a_raw_line_without_list_choices_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "xsum"
    folder.mkdir()
    (folder / "binary_choice-using_x_distractors.jsonl").write_text('{"id": 1, "input": "a", "correct_choice": "b"}\n')
    with pytest.raises(InputError, match="binary_choice-using_x_distractors.jsonl: missing column 'list_choices'"):
        build_fib(folder)


@pytest.mark.skipif(not (RAW_XSUM.is_dir() and COOKBOOK.is_dir()), reason="shared FIB data absent")
def test_build_reproduces_the_cookbook_fib_files_row_for_row(tmp_path: Path) -> None:
    built = build_fib(RAW_XSUM)
    for split, rows in (("train", 820), ("val", 180)):
        path = write_dataset(built[f"fib-xsum-{split}"], tmp_path / f"fib-xsum-{split}.parquet")
        ours = pq.read_table(path).select(["premise", "hypothesis", "target"])
        theirs = load_cookbook(COOKBOOK / f"fib-{split}.jsonl").select(["premise", "hypothesis", "target"])
        assert ours.num_rows == rows
        assert ours.equals(theirs)


def test_without_scikit_learn_the_split_is_a_config_error_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_raw(tmp_path / "xsum", n_articles=12)
    monkeypatch.setitem(sys.modules, "sklearn.model_selection", None)
    with pytest.raises(ConfigError, match=r'needs scikit-learn \(for its split\): pip install "batchjudge\[fib\]"'):
        build_fib(tmp_path)


def test_data_fib_without_scikit_learn_exits_2_naming_the_fib_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_raw(tmp_path / "xsum", n_articles=12)
    monkeypatch.setitem(sys.modules, "sklearn.model_selection", None)
    result = CliRunner().invoke(app, ["data", "fib", "--source", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert 'pip install "batchjudge[fib]"' in result.output
    assert not (tmp_path / "out").exists()  # refused before anything was read or written


def test_data_fib_with_a_missing_source_folder_says_it_does_not_exist(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "fib", "--source", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nowhere: does not exist" in result.output


def test_loading_from_the_hub_without_the_datasets_library_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match="needs the `datasets` library"):
        build_fib("hf")


def test_the_cnn_dm_part_is_built_the_same_way_beside_xsum(tmp_path: Path) -> None:
    _write_raw(tmp_path / "xsum", n_articles=30)
    _write_raw(tmp_path / "cnn_dm" / "fib", n_articles=30)  # the FIB repository's own nesting
    built = build_fib(tmp_path)
    assert set(built) == {"fib-xsum-train", "fib-xsum-val", "fib-cnn_dm-train", "fib-cnn_dm-val"}
    assert set(built["fib-cnn_dm-val"]["source"].to_pylist()) == {"fib-cnn_dm"}
    only_cnn = build_fib(tmp_path, parts=["cnn_dm"])
    assert set(only_cnn) == {"fib-cnn_dm-train", "fib-cnn_dm-val"}
