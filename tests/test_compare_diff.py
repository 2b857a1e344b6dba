"""``batchjudge compare A B --diff``: the rows where two judges disagree, and who was right."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_helpers import result_row, write_run
from typer.testing import CliRunner

from batchjudge.cli import app
from batchjudge.report import load_run
from batchjudge.report.diff import DIFF_SCHEMA, disagreements

runner = CliRunner()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """Two judges over four labelled rows and one unlabelled row, with the inputs on disk.

    They disagree on ``b`` (A right), ``c`` (B right) and ``u`` (no label); ``d`` failed in B.
    """
    inputs = tmp_path / "pairs.jsonl"
    texts = {k: (f"Document {k}.", f"Summary <{k}>.") for k in "abcdu"}
    inputs.write_text("".join(
        json.dumps({"id": k, "premise": p, "hypothesis": h}) + "\n" for k, (p, h) in texts.items()
    ))  # fmt: skip
    meta = {"fingerprint": {}, "config": {"inputs": [str(inputs)]}}
    a = [result_row("a", 1, 1, 0.9), result_row("b", 0, 0, 0.2), result_row("c", 1, 0, 0.4),
         result_row("d", 0, 0, 0.1), result_row("u", None, 1, 0.7)]  # fmt: skip
    b = [result_row("a", 1, 1, 0.8), result_row("b", 0, 1, 0.6), result_row("c", 1, 1, 0.9),
         result_row("d", 0, None), result_row("u", None, 0, 0.3)]  # fmt: skip
    return write_run(tmp_path / "base", [a], meta), write_run(tmp_path / "cand", [b], meta)


def test_disagreements_are_the_rows_both_judged_ok_with_different_verdicts(pair: tuple[Path, Path]) -> None:
    diff = disagreements(load_run(pair[0]), load_run(pair[1]))
    assert (diff.baseline, diff.candidate, diff.shared_ok) == ("base", "cand", 4)
    rows = diff.rows.to_dicts()
    assert [r["row_id"] for r in rows] == ["b", "c", "u"]
    assert [r["right"] for r in rows] == ["baseline", "candidate", None]
    assert [(r["baseline_verdict"], r["candidate_verdict"]) for r in rows] == [(0, 1), (0, 1), (1, 0)]
    assert [(r["baseline_score"], r["candidate_score"]) for r in rows] == [(0.2, 0.6), (0.4, 0.9), (0.7, 0.3)]
    assert rows[0]["hypothesis"] == "Summary <b>." and rows[0]["premise"] == "Document b."
    assert diff.texts_available


def test_compare_diff_lists_the_disagreements_in_the_terminal(pair: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["compare", *map(str, pair), "--diff", "--resamples", "100"], terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "base vs cand: 3 disagreements among 4 rows both judged ok" in result.output
    assert "Summary <c>." in result.output and "consistent 0.90 ✓" in result.output
    assert "Summary <a>." not in result.output  # they agree on a


def test_compare_diff_limit_shows_the_first_rows_and_says_how_many_more(pair: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["compare", *map(str, pair), "--diff-limit", "1", "--diff", "--resamples", "100"],
                           terminal_width=160)  # fmt: skip
    assert "Summary <b>." in result.output and "Summary <c>." not in result.output
    assert "… 2 more" in result.output


def test_compare_diff_json_has_counts_rows_and_texts(pair: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["compare", *map(str, pair), "--diff", "--json", "--resamples", "100"])
    assert result.exit_code == 0
    (diff,) = json.loads(result.stdout)["diffs"]
    assert diff["n_disagreements"] == 3 and diff["shared_ok"] == 4 and diff["texts_available"]
    assert [r["row_id"] for r in diff["rows"]] == ["b", "c", "u"]
    assert diff["rows"][1] | {"candidate_reason": None, "baseline_reason": None} == {
        "row_id": "c", "target": 1, "baseline_verdict": 0, "candidate_verdict": 1,
        "right": "candidate", "baseline_score": 0.4, "candidate_score": 0.9,
        "baseline_reason": None, "candidate_reason": None,
        "hypothesis": "Summary <c>.", "premise": "Document c.",
    }  # fmt: skip


def test_compare_without_diff_has_no_diff_section(pair: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["compare", *map(str, pair), "--json", "--resamples", "100"])
    assert "diffs" not in json.loads(result.stdout)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_diff_out_writes_every_disagreement_and_implies_diff(
    pair: tuple[Path, Path], tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"diff{suffix}"
    result = runner.invoke(app, ["compare", *map(str, pair), "--diff-out", str(out), "--diff-limit", "1",
                                 "--resamples", "100"], terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"disagreements: 3 written to {out}" in result.output and "… 2 more" in result.output
    frame = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".jsonl": pl.read_ndjson}[suffix](out)
    assert frame["row_id"].to_list() == ["b", "c", "u"]
    assert frame.columns == DIFF_SCHEMA.names
    if suffix == ".parquet":
        assert pq.read_schema(out).field("baseline_verdict").type == pa.int8()


def test_without_the_inputs_the_diff_still_lists_the_rows_and_says_there_are_no_texts(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "pairs.jsonl").unlink()
    out = tmp_path / "diff.parquet"
    result = runner.invoke(app, ["compare", *map(str, pair), "--diff-out", str(out), "--resamples", "100"],
                           terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no summaries: the inputs named in run.json are not readable here" in result.output
    frame = pl.read_parquet(out)
    assert frame.height == 3 and frame["hypothesis"].null_count() == 3


def test_each_later_run_is_diffed_against_the_first(pair: tuple[Path, Path], tmp_path: Path) -> None:
    third = write_run(tmp_path / "third", [[result_row("a", 1, 0, 0.1)]])
    result = runner.invoke(app, ["compare", *map(str, pair), str(third), "--diff", "--json", "--resamples", "100"])
    diffs = json.loads(result.stdout)["diffs"]
    assert [(d["baseline"], d["candidate"], d["n_disagreements"]) for d in diffs] == [
        ("base", "cand", 3), ("base", "third", 1),
    ]  # fmt: skip
