"""``ft export`` writes Mistral fine-tuning JSONL with the evaluation's own prompt, checked
against Mistral's rules, summarised, label-checked, split by document, mixed by weight."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from ft_fixtures import labelled_parquet
from typer.testing import CliRunner

from batchjudge.adapters.finetune import (
    TRAINING_PRICES,
    ExportOptions,
    check_file,
    export_finetune,
    read_examples,
)
from batchjudge.adapters.parsing import parse_verdict
from batchjudge.adapters.prompts import PRESETS, PromptAdapter
from batchjudge.adapters.tokens import count_chat_tokens
from batchjudge.cli.ft import ft_app
from batchjudge.errors import ConfigError, InputError

runner = CliRunner()
MODEL = "open-mistral-7b"


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize("preset", ["zero-shot", "ft"])
def test_each_example_is_the_evaluation_prompt_plus_the_answer_that_prompt_asks_for(tmp_path: Path, preset: str) -> None:
    data = labelled_parquet(tmp_path / "d.parquet", 24, seed=3)
    export_finetune([data], tmp_path / "train.jsonl", options=ExportOptions(prompt=preset))
    table = pq.read_table(data).to_pylist()
    adapter = PromptAdapter(PRESETS[preset], MODEL)
    for row, example in zip(table, _lines(tmp_path / "train.jsonl"), strict=True):
        *prompt, answer = example["messages"]
        assert prompt == adapter.render(row["premise"], row["hypothesis"]).messages
        assert answer["role"] == "assistant"
        assert parse_verdict(answer["content"]).verdict == row["target"]
        assert ("reason" in json.loads(answer["content"])) == (preset == "zero-shot")


def test_read_examples_recovers_the_exported_pairs_and_labels_exactly(tmp_path: Path) -> None:
    data = labelled_parquet(tmp_path / "d.parquet", 30, seed=4)
    export_finetune([data], tmp_path / "train.jsonl", options=ExportOptions(prompt="ft"))
    pairs = read_examples((tmp_path / "train.jsonl").read_bytes().splitlines(), where="t")
    table = pq.read_table(data)
    assert pairs.premises == table["premise"].to_pylist()
    assert pairs.hypotheses == table["hypothesis"].to_pylist()
    assert pairs.targets == table["target"].to_pylist()


def test_summary_counts_rows_tokens_balance_and_cost_per_epoch(tmp_path: Path) -> None:
    data = labelled_parquet(tmp_path / "d.parquet", 20, seed=5)
    summary = export_finetune([data], tmp_path / "train.jsonl", options=ExportOptions(prompt="ft"))
    examples = _lines(tmp_path / "train.jsonl")
    tokens = [count_chat_tokens(e["messages"], MODEL) for e in examples]
    targets = pq.read_table(data)["target"].to_pylist()
    assert summary.train.rows == 20 and summary.val is None
    assert summary.train.tokens == sum(tokens) and summary.train.max_example_tokens == max(tokens)
    assert (summary.train.consistent, summary.train.inconsistent) == (sum(targets), 20 - sum(targets))
    assert summary.cost_per_epoch.usd_per_epoch == pytest.approx(sum(tokens) * TRAINING_PRICES[MODEL] / 1e6)
    assert summary.warnings == [] and summary.prompt == "ft"


def test_validation_file_holds_whole_documents_none_shared_with_training(tmp_path: Path) -> None:
    data = labelled_parquet(tmp_path / "d.parquet", 80, seed=6)
    summary = export_finetune([data], tmp_path / "train.jsonl", val_out=tmp_path / "val.jsonl",
                              options=ExportOptions(prompt="ft", val_size=0.3))
    assert summary.val is not None and summary.train.rows + summary.val.rows == 80
    train = read_examples((tmp_path / "train.jsonl").read_bytes().splitlines(), where="train")
    val = read_examples((tmp_path / "val.jsonl").read_bytes().splitlines(), where="val")
    assert set(train.premises).isdisjoint(val.premises)
    assert summary.val.documents == len(set(val.premises))


def test_mix_draws_each_input_in_its_weighted_share(tmp_path: Path) -> None:
    first = labelled_parquet(tmp_path / "a.parquet", 40, seed=7)
    second = labelled_parquet(tmp_path / "b.parquet", 40, seed=8)
    summary = export_finetune([first, second], tmp_path / "train.jsonl",
                              options=ExportOptions(prompt="ft", mix=[0.75, 0.25], rows=40))
    premises_a = set(pq.read_table(first)["premise"].to_pylist())
    pairs = read_examples((tmp_path / "train.jsonl").read_bytes().splitlines(), where="t")
    assert summary.train.rows == 40
    assert sum(p in premises_a for p in pairs.premises) == 30


def test_balance_keeps_as_many_consistent_as_inconsistent_examples(tmp_path: Path) -> None:
    rows = [{"premise": f"Doc {i} says {i}.", "hypothesis": f"It says {i + (i % 3 == 0)}.", "target": int(i % 3 != 0)}
            for i in range(30)]
    path = tmp_path / "fib-train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = export_finetune([path], tmp_path / "train.jsonl", options=ExportOptions(prompt="ft", balance=True))
    assert (summary.train.consistent, summary.train.inconsistent) == (10, 10)


def test_the_cookbooks_all_consistent_usb_copy_is_repaired_and_said_so(tmp_path: Path) -> None:
    rows = [{"premise": f"Evidence {i}: the bridge opened in {1900 + i}.", "hypothesis": f"The bridge opened in {1900 + i + v}.",
             "target": 1} for i in range(12) for v in (0, 50)]
    usb = tmp_path / "usb-train.jsonl"
    usb.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = export_finetune([usb], tmp_path / "train.jsonl", options=ExportOptions(prompt="ft"))
    assert (summary.train.consistent, summary.train.inconsistent) == (12, 12)
    assert any("REPAIRED" in note for note in summary.notes)


def test_single_class_data_is_exported_with_the_sanity_warning(tmp_path: Path) -> None:
    rows = [{"premise": f"Doc {i} says {i}.", "hypothesis": f"It says {i}.", "target": 1} for i in range(6)]
    path = tmp_path / "fib-train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = export_finetune([path], tmp_path / "train.jsonl", options=ExportOptions(prompt="ft"))
    assert [w.split(":")[0] for w in summary.warnings] == ["single_class"]


def _write(path: Path, examples: list[object]) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in examples))
    return path


_USER = {"role": "user", "content": "Document: \nA.\nSummary: \nB.\n"}
_ANSWER = {"role": "assistant", "content": '{"consistency": 1}'}


@pytest.mark.parametrize(("example", "complaint"), [
    ({"messages": [_USER]}, "last message must be the assistant"),
    ({"messages": [_USER, {"role": "assistant", "content": "  "}]}, "empty content"),
    ({"messages": [{"role": "robot", "content": "hi"}, _ANSWER]}, "role 'robot'"),
    ({"messages": [_USER, {"role": "system", "content": "late"}, _ANSWER]}, "system message may only come first"),
    ({"messages": [{"role": "system", "content": "s"}, _ANSWER]}, "no user message"),
    ({"prompt": "x"}, "expected {'messages'"),
    ("{not json", "not valid JSON"),
])
def test_check_file_names_the_line_that_breaks_a_rule(tmp_path: Path, example: object, complaint: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [{"messages": [_USER, _ANSWER]}, example])
    with pytest.raises(InputError, match=complaint) as caught:
        check_file(path, model=MODEL)
    assert f"{path}:2" in str(caught.value)


def test_check_file_refuses_an_example_over_the_token_limit(tmp_path: Path) -> None:
    path = _write(tmp_path / "long.jsonl", [{"messages": [_USER, _ANSWER]}])
    assert check_file(path, model=MODEL).rows == 1
    with pytest.raises(InputError, match="over the 5-token limit"):
        check_file(path, model=MODEL, max_tokens=5)


def test_a_failed_export_leaves_no_file_under_the_final_name(tmp_path: Path) -> None:
    data = labelled_parquet(tmp_path / "d.parquet", 4, seed=2)
    prompt = tmp_path / "topic.txt"
    prompt.write_text("Topic: {topic}\nDocument: \n{premise}\nSummary: \n{hypothesis}\n")
    with pytest.raises(InputError, match="example 1: prompt 'topic' needs the row field 'topic'"):
        export_finetune([data], tmp_path / "out" / "train.jsonl", options=ExportOptions(prompt=str(prompt)))
    assert list((tmp_path / "out").iterdir()) == []


def test_a_file_over_the_upload_limit_is_refused_and_not_left_behind(tmp_path: Path) -> None:
    data = labelled_parquet(tmp_path / "d.parquet", 4, seed=11)
    with pytest.raises(InputError, match="over the 2000-byte upload limit"):
        export_finetune([data], tmp_path / "out" / "t.jsonl", options=ExportOptions(prompt="ft", max_file_bytes=2000))
    assert list((tmp_path / "out").iterdir()) == []


def test_mix_needs_one_weight_per_input(tmp_path: Path) -> None:
    data = labelled_parquet(tmp_path / "d.parquet", 10, seed=9)
    with pytest.raises(ConfigError, match="1 input"):
        export_finetune([data], tmp_path / "t.jsonl", options=ExportOptions(mix=[0.5, 0.5]))


def test_cli_export_prints_the_summary_and_exits_2_naming_a_bad_input(tmp_path: Path) -> None:
    data = labelled_parquet(tmp_path / "d.parquet", 20, seed=10)
    ok = runner.invoke(ft_app, ["export", str(data), "--out", str(tmp_path / "t.jsonl"), "--prompt", "ft", "--json",
                                "--trace", f"local:{tmp_path / 'traces'}"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["train"]["rows"] == 20
    (record,) = [json.loads(line) for line in (tmp_path / "traces" / "ops.jsonl").read_text().splitlines()]
    assert record["op"] == "batchjudge.finetune.export" and record["output"]["train"]["rows"] == 20
    broken = tmp_path / "fib-bad.jsonl"
    broken.write_text('{"premise": "p", "hypothesis": "h"}\n')
    bad = runner.invoke(ft_app, ["export", str(broken), "--out", str(tmp_path / "u.jsonl")])
    assert bad.exit_code == 2 and "missing column 'target'" in bad.output
    mix = runner.invoke(ft_app, ["export", str(data), "--out", str(tmp_path / "v.jsonl"), "--mix", "a,b"])
    assert mix.exit_code == 2 and "--mix" in mix.output


SHARED_COOKBOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"


def test_the_cookbooks_fib_validation_file_exports_within_mistrals_rules(tmp_path: Path) -> None:
    source = SHARED_COOKBOOK / "fib-val.jsonl"
    if not source.is_file():
        pytest.skip("../shared/data is not on this machine")
    out = tmp_path / "fib-val-ft.jsonl"
    summary = export_finetune([source], out, options=ExportOptions(prompt="ft"))
    stats = check_file(out, model=MODEL)
    assert (summary.train.rows, summary.train.consistent, summary.train.inconsistent) == (180, 90, 90)
    assert (stats.rows, stats.tokens, stats.unlabelled) == (180, summary.train.tokens, 0)
    assert summary.warnings == [] and summary.train.truncated_rows == 0
