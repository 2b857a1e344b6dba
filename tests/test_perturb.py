"""Specification of the perturbation twins (``batchjudge.datasets.perturb``, ``data perturb``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from batchjudge.cli import app
from batchjudge.datasets.perturb import KINDS, claim_sentences, perturb_summary, perturb_table
from batchjudge.datasets.schema import DATASET_COLUMNS, dataset_table
from batchjudge.errors import ConfigError

DOC = (
    "Greyfield Foods said on Monday that it would cut 47 jobs at its factory in Leeds. "
    "The decision was confirmed by Mr Keller, the firm's chief executive, in March 2019. "
    "He said the cuts had not been taken lightly.\n"
    "Separately, Atlas Rail opened a new depot in Bristol on Friday, creating 120 jobs in 2021. "
    "Mrs Okafor, who runs the depot, said she was delighted."
)
SUMMARY = "Greyfield Foods will cut 47 jobs in Leeds, Mr Keller said on Monday in March 2019, and he has confirmed it."


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text)


def _changed(before: str, after: str) -> tuple[list[str], list[str]]:
    """The words only ``before`` has and the words only ``after`` has (order kept)."""
    a, b = _words(before), _words(after)
    return [w for w in a if w not in b], [w for w in b if w not in a]


def test_a_number_swap_takes_another_number_of_the_same_document() -> None:
    twin = perturb_summary(DOC, SUMMARY, "number_swap", key="r1")
    assert twin is not None and twin.kind == "number_swap"
    assert (twin.before, twin.after) == ("47", "120")
    assert _changed(SUMMARY, twin.hypothesis) == (["47"], ["120"])


def test_an_entity_swap_replaces_one_name_with_another_of_its_type_from_the_document() -> None:
    twin = perturb_summary(DOC, "Mr Keller confirmed the cuts at Greyfield Foods.", "entity_swap", key="r2")
    assert twin is not None
    removed, added = _changed("Mr Keller confirmed the cuts at Greyfield Foods.", twin.hypothesis)
    assert removed == twin.before.split() and added == twin.after.split()
    assert twin.after in DOC and twin.after not in ("Keller", "Greyfield Foods")
    if twin.before == "Keller":
        assert twin.after == "Okafor"  # a person for a person, as the document uses them


def test_a_date_swap_keeps_the_kind_of_date() -> None:
    kinds = {"Monday": {"Friday"}, "2019": {"2021"}, "March": None}
    for key in ("a", "b", "c", "d", "e", "f"):
        twin = perturb_summary(DOC, SUMMARY, "date_swap", key=key)
        assert twin is not None and twin.before in kinds
        allowed = kinds[twin.before]
        if allowed is None:  # the document states no other month: another month is made up
            assert twin.after != "March" and twin.after.lower() in {
                "january", "february", "april", "may", "june", "july", "august", "september",
                "october", "november", "december"}  # fmt: skip
        else:
            assert twin.after in allowed
        assert _changed(SUMMARY, twin.hypothesis) == ([twin.before], [twin.after])


def test_a_pronoun_swap_changes_the_gender_of_every_pronoun_of_one_gender() -> None:
    summary = "Mr Keller said he would cut jobs at his factory, and Mrs Okafor said she was delighted."
    twins = {perturb_summary(DOC, summary, "pronoun_swap", key=k) for k in "abcdefgh"}
    assert {(t.before, t.after) for t in twins if t} == {("he his", "she her"), ("she", "he")}
    for twin in twins:
        assert twin is not None
        a, b = _words(summary), _words(twin.hypothesis)
        assert len(a) == len(b)
        changed = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        assert changed == list(zip(twin.before.split(), twin.after.split(), strict=True))


def test_her_becomes_his_before_a_noun_and_him_otherwise() -> None:
    twin = perturb_summary(DOC, "The firm thanked her and her team.", "pronoun_swap")
    assert twin is not None and twin.hypothesis == "The firm thanked him and his team."


def test_negation_is_added_after_an_auxiliary_or_removed_where_written() -> None:
    added = perturb_summary(DOC, "Greyfield Foods has confirmed the cuts.", "negation")
    assert added is not None and added.hypothesis == "Greyfield Foods has not confirmed the cuts."
    removed = perturb_summary(DOC, "The cuts were not taken lightly.", "negation")
    assert removed is not None and removed.hypothesis == "The cuts were taken lightly."
    contracted = perturb_summary(DOC, "The firm didn't hesitate.", "negation")
    assert contracted is not None and contracted.hypothesis == "The firm did hesitate."


def test_facts_the_document_lacks_are_never_swapped() -> None:
    summary = "Norland Bank will hire 900 staff in Paris on Tuesday in 1999."
    for kind in ("entity_swap", "number_swap", "date_swap"):
        assert perturb_summary(DOC, summary, kind) is None


def test_twins_are_seeded_by_row_and_seed_only() -> None:
    first = [perturb_summary(DOC, SUMMARY, kind, seed=5, key="row") for kind in KINDS]
    again = [perturb_summary(DOC, SUMMARY, kind, seed=5, key="row") for kind in KINDS]
    assert first == again
    others = {perturb_summary(DOC, SUMMARY, "date_swap", seed=s, key="row") for s in range(8)}
    assert len(others) > 1


def _table(rows: list[tuple[str, str, int]]) -> pa.Table:
    return dataset_table(
        ids=[f"row-{i}" for i in range(len(rows))], doc_ids=[f"doc-{i}" for i in range(len(rows))],
        premises=[r[0] for r in rows], hypotheses=[r[1] for r in rows], targets=[r[2] for r in rows],
        source="test", split="val",
    )  # fmt: skip


def test_a_table_keeps_each_original_first_with_its_twins_and_records_kind_and_pair() -> None:
    table = _table([(DOC, SUMMARY, 1), (DOC, "Greyfield Foods will cut 74 jobs.", 0)])
    out = perturb_table(table)
    assert tuple(out.schema.names[: len(DATASET_COLUMNS)]) == DATASET_COLUMNS
    rows = out.to_pylist()
    assert rows[0]["kind"] == "consistent" and rows[0]["target"] == 1 and rows[0]["id"] == "row-0"
    assert [r["kind"] for r in rows[1:]] == ["entity_swap", "number_swap", "date_swap", "pronoun_swap", "negation"]
    assert all(r["target"] == 0 and r["pair_id"] == "row-0" and r["doc_id"] == "doc-0" for r in rows[1:])
    assert all(" -> " in r["perturbation"] for r in rows[1:]) and {r["claim"] for r in rows} == {"summary"}
    assert len({r["id"] for r in rows}) == len(rows)  # the inconsistent input row made no pair


def test_document_sentences_serve_as_claims_when_asked() -> None:
    claims = claim_sentences(DOC, 2, key="doc-0")
    assert len(claims) == 2 and all(c in DOC for c in claims)
    out = perturb_table(_table([(DOC, SUMMARY, 1)]), sentences=2).to_pylist()
    sentence_rows = [r for r in out if r["claim"] == "sentence"]
    assert sentence_rows and all(r["hypothesis"] in DOC for r in sentence_rows if r["kind"] == "consistent")


def test_unknown_kinds_and_negative_sentence_counts_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown perturbation kind 'typo'"):
        perturb_table(_table([(DOC, SUMMARY, 1)]), kinds=["typo"])
    with pytest.raises(ConfigError, match="--sentences"):
        perturb_table(_table([(DOC, SUMMARY, 1)]), sentences=-1)


def test_data_perturb_writes_the_twins_and_counts_them(tmp_path: Path) -> None:
    source = tmp_path / "pairs.jsonl"
    source.write_text(json.dumps({"premise": DOC, "hypothesis": SUMMARY, "target": 1}) + "\n")
    result = CliRunner().invoke(app, ["data", "perturb", str(source), "--out", str(tmp_path / "out"),
                                      "--kinds", "number_swap,negation"])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "out" / "pairs-perturbed.parquet")
    assert table.column("kind").to_pylist() == ["consistent", "number_swap", "negation"]
    assert "number_swap" in result.output and "wrote 3 rows" in result.output
    bad = CliRunner().invoke(app, ["data", "perturb", str(source), "--out", str(tmp_path), "--kinds", "typo"])
    assert bad.exit_code == 2 and "typo" in bad.output


def test_a_capitalised_word_opening_the_summary_is_swapped_only_if_the_document_names_it() -> None:
    doc = (
        "Parents of pupils at Hillside School said the council had cut free transport in Kelton. "
        "Ms Darrow, who chairs the parents' group, lives in Ormsby."
    )
    assert perturb_summary(doc, "Parents are taking legal action over transport.", "entity_swap", key="p") is None
    twin = perturb_summary(doc, "Parents in Ormsby are taking legal action.", "entity_swap", key="p")
    assert twin is not None and (twin.before, twin.after) == ("Ormsby", "Kelton")


def test_a_pronoun_capitalised_mid_sentence_is_no_name_to_swap_in() -> None:
    doc = 'Parents in Ormsby are angry. Their leader said: "We will fight this."'
    assert perturb_summary(doc, "Parents in Ormsby will fight.", "entity_swap", key="p") is None
