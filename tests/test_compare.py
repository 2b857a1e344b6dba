"""McNemar's test and the `compare` command."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import pytest
from report_helpers import result_row, write_run
from typer.testing import CliRunner

from batchjudge.cli import app
from batchjudge.report import compare_runs, load_run, mcnemar, paired_test
from batchjudge.report.prices import PriceTable


def test_mcnemar_is_an_exact_binomial_test_for_few_discordant_rows() -> None:
    assert mcnemar(0, 5).p_value == pytest.approx(2 / 32)  # 2 × P(X ≤ 0), X ~ Bin(5, ½)
    assert mcnemar(1, 9).p_value == pytest.approx(2 * 11 / 1024)  # 2 × (1 + 10) / 2¹⁰
    assert mcnemar(3, 3).p_value == 1.0
    assert mcnemar(0, 0).p_value == 1.0
    assert mcnemar(1, 9).method == "exact binomial" and mcnemar(1, 9).statistic is None


def test_mcnemar_uses_continuity_corrected_chi_square_for_many() -> None:
    test = mcnemar(10, 30)
    assert test.statistic == pytest.approx((20 - 1) ** 2 / 40)
    # chi-square(1) tail = two-sided normal tail of sqrt(statistic)
    assert test.p_value == pytest.approx(2 * (1 - NormalDist().cdf(math.sqrt(test.statistic))))
    assert test.significant
    assert not mcnemar(20, 26).significant


def test_mcnemar_refuses_negative_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar(-1, 2)


def _pair(tmp_path: Path, only_a: int, only_b: int, both: int = 20) -> tuple[Path, Path]:
    """Two runs on shared labelled rows: ``only_a`` rows only A gets right, ``only_b`` only B."""
    a_rows, b_rows = [], []
    for i in range(both):
        a_rows.append(result_row(f"s{i}", 1, 1))
        b_rows.append(result_row(f"s{i}", 1, 1))
    for i in range(only_a):
        a_rows.append(result_row(f"a{i}", 0, 0))
        b_rows.append(result_row(f"a{i}", 0, 1))
    for i in range(only_b):
        a_rows.append(result_row(f"b{i}", 1, 0))
        b_rows.append(result_row(f"b{i}", 1, 1))
    # Rows that must not enter the test: failed in one run, unlabelled, only in one run,
    # and a row whose targets disagree.
    a_rows += [result_row("f", 1, 1), result_row("u", None, 1), result_row("solo", 1, 0),
               result_row("x", 1, 1)]  # fmt: skip
    b_rows += [result_row("f", 1, None), result_row("u", None, 0), result_row("x", 0, 1)]
    return (
        write_run(tmp_path / "baseline", [a_rows]),
        write_run(tmp_path / "candidate", [b_rows]),
    )


def test_the_paired_test_uses_only_rows_ok_and_labelled_in_both(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, only_a=2, only_b=12)
    result = paired_test(load_run(a), load_run(b))
    assert result["shared_rows"] == 34
    assert result["conflicting_targets"] == 1
    assert (result["only_baseline_right"], result["only_candidate_right"]) == (2, 12)
    assert result["accuracy_baseline"] == pytest.approx(22 / 34)
    assert result["accuracy_candidate"] == pytest.approx(32 / 34)
    assert result["p_value"] == pytest.approx(mcnemar(2, 12).p_value)


def test_the_verdict_says_plainly_whether_the_difference_is_significant(tmp_path: Path) -> None:
    a, b = _pair(tmp_path / "sig", only_a=2, only_b=12)
    significant = paired_test(load_run(a), load_run(b))
    assert significant["significant"]
    assert significant["verdict"].startswith("candidate is significantly more accurate than baseline")
    a, b = _pair(tmp_path / "ns", only_a=4, only_b=6)
    unclear = paired_test(load_run(a), load_run(b))
    assert not unclear["significant"]
    assert unclear["verdict"].startswith("No significant difference")


def test_compare_runs_puts_summaries_side_by_side_and_tests_each_against_the_first(
    tmp_path: Path,
) -> None:
    a, b = _pair(tmp_path, only_a=1, only_b=3)
    c = write_run(tmp_path / "third", [[result_row("s0", 1, 0)]])
    comparison = compare_runs([load_run(p) for p in (a, b, c)], PriceTable(), resamples=200)
    assert [r["run_dir"] for r in comparison["runs"]] == [str(a), str(b), str(c)]
    assert [(t["baseline"], t["candidate"]) for t in comparison["tests"]] == [
        ("baseline", "candidate"), ("baseline", "third"),
    ]  # fmt: skip
    assert comparison["runs"][0]["intervals"]["accuracy"] is not None


def test_runs_with_the_same_directory_name_are_told_apart_by_path(tmp_path: Path) -> None:
    a = write_run(tmp_path / "x" / "run", [[result_row("r", 1, 1)]])
    b = write_run(tmp_path / "y" / "run", [[result_row("r", 1, 0)]])
    test = compare_runs([load_run(a), load_run(b)], PriceTable(), resamples=200)["tests"][0]
    assert (test["baseline"], test["candidate"]) == (str(a), str(b))


def test_compare_command_prints_json_and_tables(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, only_a=2, only_b=12)
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--json", "--resamples", "200"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["runs"]) == 2 and data["tests"][0]["significant"] is True
    table = CliRunner().invoke(app, ["compare", str(a), str(b), "--resamples", "200"])
    assert table.exit_code == 0 and "McNemar" in table.stdout and "significantly" in table.stdout


def test_compare_needs_two_runs_and_real_run_directories(tmp_path: Path) -> None:
    a, _ = _pair(tmp_path, only_a=1, only_b=1)
    one = CliRunner().invoke(app, ["compare", str(a)])
    assert one.exit_code == 2 and "at least two" in one.output
    missing = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_compare_html_shows_verdicts_side_by_side_and_overlaid_roc_curves(tmp_path: Path) -> None:
    a_rows = [result_row(f"r{i}", i % 2, i % 2, 0.2 + 0.6 * (i % 2)) for i in range(20)]
    b_rows = [result_row(f"r{i}", i % 2, 1, 0.7 - 0.01 * i) for i in range(20)]
    a = write_run(tmp_path / "sharp", [a_rows])
    b = write_run(tmp_path / "vague", [b_rows])
    out = tmp_path / "compare.html"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--html", str(out), "--resamples", "200"])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "sharp vs vague" in page and "Side by side" in page
    assert "sharp is significantly more accurate than vague" in page
    assert page.count("<polyline") == 2 and "<script" not in page
