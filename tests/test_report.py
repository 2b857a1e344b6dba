"""Loading a run, its summary, cost, failures, mistakes, and the `report` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_helpers import result_row, write_run
from typer.testing import CliRunner

from batchjudge.cli import app
from batchjudge.core.schema import RESULT_SCHEMA
from batchjudge.errors import ConfigError, InputError
from batchjudge.report import load_prices, load_run, summarize, worst_mistakes
from batchjudge.report.formatting import cost_text
from batchjudge.report.prices import Price, PriceTable

# Hand-made run: 4 consistent (3 judged right), 4 inconsistent (2 right), plus one
# unlabelled ok row, one parse error and one failed row.
LABELLED = [
    result_row("c1", 1, 1, 0.9), result_row("c2", 1, 1, 0.8), result_row("c3", 1, 1, 0.6),
    result_row("c4", 1, 0, 0.05),  # confidently wrong
    result_row("i1", 0, 0, 0.1), result_row("i2", 0, 0, 0.3),
    result_row("i3", 0, 1, 0.7), result_row("i4", 0, 1, 0.55),
]  # fmt: skip
OTHERS = [
    result_row("u1", None, 1, 0.9),
    result_row("p1", 1, None, None, status="parse_error", error="no verdict found in the reply"),
    result_row("f1", 0, None, None, error="RateLimitError: 429 after 5 attempts", attempts=6),
]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", [LABELLED[:5], LABELLED[5:] + OTHERS])


def test_summary_counts_every_status(run_dir: Path) -> None:
    s = summarize(load_run(run_dir), PriceTable(), resamples=200)
    assert (s["n_rows"], s["n_ok"], s["n_parse_error"], s["n_failed"]) == (11, 9, 1, 1)
    assert (s["n_labelled"], s["n_scored"]) == (10, 8)


def test_summary_quality_matches_hand_computation(run_dir: Path) -> None:
    s = summarize(load_run(run_dir), PriceTable(), resamples=200)
    assert s["accuracy"] == pytest.approx(5 / 8)
    assert s["accuracy_all"] == pytest.approx(5 / 10)  # parse error and failure count wrong
    assert s["confusion_matrix"]["matrix"] == [[2, 2], [1, 3]]
    assert s["precision"] == {"consistent": pytest.approx(3 / 5), "inconsistent": pytest.approx(2 / 3)}
    assert s["recall"] == {"consistent": pytest.approx(3 / 4), "inconsistent": pytest.approx(2 / 4)}
    assert s["balanced_accuracy"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    # consistent scores .9 .8 .6 .05 vs inconsistent .1 .3 .7 .55: 11 of 16 pairs ranked right
    assert s["roc_auc"] == pytest.approx(11 / 16)
    low, high = s["intervals"]["accuracy"]
    assert low <= s["accuracy"] <= high


def test_summary_reports_tokens_latency_attempts_and_failures_by_kind(run_dir: Path) -> None:
    s = summarize(load_run(run_dir), PriceTable(), resamples=200)
    assert s["tokens"] == {"prompt": 11_000, "completion": 220, "total": 11_220,
                           "truncated_rows": 0, "truncated_tokens": 0}  # fmt: skip
    assert s["latency_ms"]["p50"] == 100.0
    assert s["attempts"]["retried_rows"] == 1 and s["attempts"]["max"] == 6
    assert s["failures"] == {"failed: RateLimitError": 1, "parse_error": 1}


def test_cost_uses_the_price_table_and_user_overrides(run_dir: Path, tmp_path: Path) -> None:
    default = summarize(load_run(run_dir), PriceTable(), resamples=200)
    assert default["cost_usd"] == pytest.approx((11_000 * 0.25 + 220 * 0.25) / 1e6)
    prices = tmp_path / "prices.toml"
    prices.write_text('["open-mistral-7b"]\ninput = 1.0\noutput = 10.0\n')
    custom = summarize(load_run(run_dir), load_prices(prices), resamples=200)
    assert custom["cost_usd"] == pytest.approx((11_000 * 1.0 + 220 * 10.0) / 1e6)


def _run_with(tmp_path: Path, **meta: Any) -> dict[str, Any]:
    config = {"model": "open-mistral-7b", "provider": "mistral", **meta.pop("config", {})}
    rows = [result_row("a", 1, 1), result_row("b", 1, 1, attempts=0, prompt_tokens=0, completion_tokens=0)]
    run = write_run(tmp_path / "r", [rows], {"fingerprint": {}, "config": config, **meta})
    return summarize(load_run(run), PriceTable(), resamples=100)


def test_a_batch_mode_run_costs_half_the_online_price(tmp_path: Path) -> None:
    batch = _run_with(tmp_path, config={"mode": "batch"})
    assert batch["pricing"] == "batch" and batch["cost_usd"] == pytest.approx((1000 * 0.25 + 20 * 0.25) / 1e6 / 2, abs=1e-6)
    assert "(batch API, half price)" in cost_text(batch)


@pytest.mark.parametrize(("meta", "reason"), [
    ({"config": {"provider": "local"}}, "local judge"),
    ({"config": {"provider": "mock"}}, "mock provider"),
    ({"endpoint": {"host": "127.0.0.1:8000", "emulator": True}}, "emulator"),
])  # fmt: skip
def test_the_local_judge_a_mock_and_the_emulator_bill_nothing(
    tmp_path: Path, meta: dict[str, Any], reason: str
) -> None:
    s = _run_with(tmp_path, **meta)
    assert (s["billed"], s["not_billed"], s["cost_usd"], s["cost_by_model"]) == (False, reason, 0.0, {})
    assert cost_text(s) == f"none ({reason})"


def test_rows_that_reused_an_identical_requests_answer_are_counted(tmp_path: Path) -> None:
    assert _run_with(tmp_path)["n_reused"] == 1


def test_an_unknown_model_has_no_cost_and_is_named(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [[result_row("a", 1, 1, model="my-private-judge")]])
    s = summarize(load_run(run), PriceTable(), resamples=200)
    assert s["cost_usd"] is None and s["unpriced_models"] == ["my-private-judge"]


def test_price_lookup_falls_back_to_prefixes_and_fine_tuned_bases() -> None:
    table = PriceTable({"my-judge": Price(1.0, 2.0)})
    assert table.price("mistral-large-2411") == Price(2.0, 6.0)
    assert table.price("ft:open-mistral-7b:abc:20240601:x") == Price(0.25, 0.25)
    assert table.price("my-judge-v2") == Price(1.0, 2.0)
    assert table.price("gpt-4o") is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.json", "[1, 2]", "expected an object"),
        ("p.json", '{"m": {"input": 1}}', "model 'm'"),
        ("p.json", '{"m": [1, -2]}', "non-negative"),
        ("p.json", "{", "not valid JSON"),
        ("p.toml", "m = ", "not valid TOML"),
    ],
)
def test_a_bad_price_file_is_a_config_error_naming_the_file(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_prices(path)
    assert str(path) in str(info.value)


def test_an_unlabelled_run_reports_counts_but_no_quality(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [[result_row("a", None, 1, 0.8), result_row("b", None, 0)]])
    s = summarize(load_run(run), PriceTable(), resamples=200)
    assert s["n_ok"] == 2 and s["n_labelled"] == 0
    assert s["accuracy"] is None and s["roc_auc"] is None and s["intervals"] is None


def test_a_judge_without_scores_gets_no_auc_but_all_else(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [[result_row("a", 1, 1), result_row("b", 0, 1)]])
    s = summarize(load_run(run), PriceTable(), resamples=200)
    assert s["accuracy"] == 0.5 and s["roc_auc"] is None and s["n_with_score"] == 0
    assert "roc_auc" not in s["intervals"]


def test_worst_mistakes_come_most_confident_first_with_reasons(run_dir: Path) -> None:
    wrong = worst_mistakes(load_run(run_dir))
    assert [w["row_id"] for w in wrong] == ["c4", "i3", "i4"]
    assert wrong[0]["reason"] == "reason for c4" and wrong[0]["confidence"] == pytest.approx(0.9)


def test_a_row_with_results_in_two_parts_is_refused_never_counted_twice(tmp_path: Path) -> None:
    """The engine never writes a row twice (--retry-failed rewrites the parts), so a second
    result means a copied part: which one is right cannot be known."""
    run = write_run(tmp_path / "r", [[result_row("a", 1, None)], [result_row("a", 1, 1)]])
    with pytest.raises(InputError, match=r"1 row id\(s\) have more than one result \(e.g. 'a'\)"):
        load_run(run)


def test_a_run_from_before_run_ids_reads_and_columns_its_parts_lack_are_empty(tmp_path: Path) -> None:
    """A run.json without a run id and parts without one (older versions): read as they are."""
    run = tmp_path / "r"
    (run / "results").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"fingerprint": {}, "config": {"model": "open-mistral-7b"}}))
    pq.write_table(pa.Table.from_pylist([result_row("a", 1, 1, 0.9)], schema=RESULT_SCHEMA),
                   run / "results" / "part-000000.parquet")  # fmt: skip
    old = pa.table({"row_id": ["b"], "status": ["ok"], "verdict": pa.array([0], pa.int8()),
                    "target": pa.array([0], pa.int8())})  # fmt: skip
    pq.write_table(old, run / "results" / "part-000009.parquet")
    s = summarize(load_run(run), PriceTable(), resamples=200)
    assert s["n_rows"] == 2 and s["accuracy"] == 1.0 and s["tokens"]["prompt"] == 1000


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "not a directory"),
        (lambda p: p.mkdir(), "not a batchjudge run directory"),
        (lambda p: (p.mkdir(), (p / "run.json").write_text("{oops")), "run.json: unreadable"),
        (
            lambda p: (p.mkdir(), (p / "results").mkdir(),
                       (p / "results" / "part-000000.parquet").write_text("not parquet")),
            "results/ holds results but run.json is missing",
        ),
    ],
)
def test_a_path_that_is_not_a_run_is_an_input_error_naming_it(
    tmp_path: Path, make: object, message: str
) -> None:
    path = tmp_path / "run"
    make(path)  # type: ignore[operator]
    with pytest.raises(InputError, match=message):
        load_run(path)


def test_a_part_with_a_column_of_the_wrong_type_is_an_input_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [[result_row("a", 1, 1)]])
    pq.write_table(pa.table({"row_id": ["b"], "status": ["ok"], "verdict": ["yes"]}),
                   run / "results" / "part-000001.parquet")  # fmt: skip
    with pytest.raises(InputError, match="verdict"):
        load_run(run)


def test_report_json_prints_one_object_with_the_contract_keys(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_dir), "--json", "--resamples", "200"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("n_rows", "n_ok", "n_failed", "n_parse_error", "accuracy", "balanced_accuracy",
                "precision", "recall", "f1", "roc_auc", "tokens", "latency_ms"):  # fmt: skip
        assert key in data
    assert set(data["f1"]) == {"consistent", "inconsistent"}
    assert set(data["latency_ms"]) >= {"p50", "p95", "p99"}


def test_report_renders_tables_in_the_terminal(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_dir), "--resamples", "200"])
    assert result.exit_code == 0, result.output
    for text in ("accuracy", "ROC-AUC", "Confusion", "failed: RateLimitError", "latency"):
        assert text in result.stdout


def test_report_on_a_missing_directory_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "does not exist" in lines[0]


def test_report_with_a_bad_price_file_exits_2(run_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text("[]")
    result = CliRunner().invoke(app, ["report", str(run_dir), "--prices", str(bad)])
    assert result.exit_code == 2 and "p.json" in result.output


def test_a_run_without_results_yet_reports_zero_rows(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [])
    s = summarize(load_run(run), PriceTable(), resamples=200)
    assert (s["n_rows"], s["n_ok"], s["accuracy"], s["cost_usd"]) == (0, 0, None, 0.0)
    assert s["latency_ms"]["p50"] is None and s["failures"] == {}


# ---------------------------------------------------------------- pairwise accuracy
def _paired_run(tmp_path: Path, rows: list[dict[str, object]], results: list[dict[str, object]]) -> Path:
    """A run whose inputs (``rows``, JSON lines) still exist beside it."""
    inputs = tmp_path / "pairs.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = {"config": {"inputs": [str(inputs)], "provider": "local", "model": "local-judge"}}
    return write_run(tmp_path / "run", [results], meta)


def test_pairwise_accuracy_pairs_rows_by_their_pair_id_and_breaks_it_down_by_kind(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "premise": "doc one", "hypothesis": "s", "target": 1, "pair_id": "a", "kind": "consistent"},
        {"id": "a1", "premise": "doc one", "hypothesis": "s1", "target": 0, "pair_id": "a", "kind": "number_swap"},
        {"id": "a2", "premise": "doc one", "hypothesis": "s2", "target": 0, "pair_id": "a", "kind": "negation"},
        {"id": "b", "premise": "doc one", "hypothesis": "t", "target": 1, "pair_id": "b", "kind": "consistent"},
        {"id": "b1", "premise": "doc one", "hypothesis": "t1", "target": 0, "pair_id": "b", "kind": "number_swap"},
    ]  # one document, two pairs: the pair_id column, not the premise, decides
    results = [result_row("a", 1, 1, 0.8), result_row("a1", 0, 0, 0.3), result_row("a2", 0, 1, 0.8),
               result_row("b", 1, 0, 0.2), result_row("b1", 0, 0, 0.1)]  # fmt: skip
    s = summarize(load_run(_paired_run(tmp_path, rows, results)), PriceTable(), resamples=100)
    assert s["pairwise_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)
    pairwise = s["pairwise"]
    assert (pairwise["pairs"], pairwise["groups"], pairwise["groups_from"]) == (3, 2, "pair_id")
    assert pairwise["by_kind"] == {"negation": {"pairwise_accuracy": 0.5, "pairs": 1},
                                   "number_swap": {"pairwise_accuracy": 1.0, "pairs": 2}}  # fmt: skip
    assert s["intervals"]["pairwise_accuracy"] == pairwise["interval"]
    shown = CliRunner().invoke(app, ["report", str(tmp_path / "run")])
    assert "pairwise accuracy" in shown.output and "Pairwise accuracy by kind" in shown.output
    page = CliRunner().invoke(app, ["report", str(tmp_path / "run"), "--html", str(tmp_path / "r.html")])
    assert page.exit_code == 0 and "<h2>Pairwise accuracy</h2>" in (tmp_path / "r.html").read_text()
    compared = CliRunner().invoke(app, ["compare", str(tmp_path / "run"), str(tmp_path / "run"), "--json"])
    assert [r["pairwise_accuracy"] for r in json.loads(compared.output)["runs"]] == [s["pairwise_accuracy"]] * 2


def test_without_a_pair_column_rows_sharing_a_premise_pair_up_by_verdict_when_unscored(tmp_path: Path) -> None:
    rows = [{"premise": p, "hypothesis": h, "target": t} for p, h, t in
            (("doc one", "s", 1), ("doc one", "s1", 0), ("doc two", "t", 1), ("doc two", "t1", 0), ("doc three", "u", 1))]  # fmt: skip
    from batchjudge.engine.source import open_source

    inputs = tmp_path / "pairs.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ids = [r.row_id for b in open_source([str(inputs)]).batches() for r in b]
    verdicts = [1, 1, 1, 0, 0]  # a tie, a win; document three has no inconsistent summary
    results = [result_row(i, r["target"], v, None) for i, r, v in zip(ids, rows, verdicts, strict=True)]
    s = summarize(load_run(_paired_run(tmp_path, rows, results)), PriceTable(), resamples=100)
    assert s["pairwise_accuracy"] == 0.75 and s["pairwise"]["groups_from"] == "premise"
    assert s["pairwise"]["compared_by"].startswith("verdict") and s["pairwise"]["by_kind"] == {}


def test_a_run_whose_inputs_are_gone_has_no_pairwise_figure(run_dir: Path) -> None:
    s = summarize(load_run(run_dir), PriceTable(), resamples=100)
    assert s["pairwise_accuracy"] is None and s["pairwise"] is None
