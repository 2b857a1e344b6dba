"""The shipped sample: 50 original documents, each with one consistent and one inconsistent summary."""

from __future__ import annotations

import collections
import re

from batchjudge.datasets.sample import load_sample
from batchjudge.datasets.sanity import check_labels
from batchjudge.datasets.schema import DATASET_SCHEMA

ERROR_KINDS = {"number", "name", "date", "negation", "unsupported", "causal", "entity_swap"}


def test_the_sample_ships_in_the_dataset_schema_with_a_kind_column() -> None:
    table = load_sample()
    assert table.schema.names == [*DATASET_SCHEMA.names, "kind"]
    assert table.num_rows == 100
    assert len(set(table["id"].to_pylist())) == 100
    assert set(table["source"].to_pylist()) == {"sample"}


def test_every_document_has_exactly_one_summary_of_each_class() -> None:
    table = load_sample()
    per_doc = collections.Counter(zip(table["doc_id"].to_pylist(), table["target"].to_pylist(), strict=True))
    assert len({doc for doc, _ in per_doc}) == 50
    assert set(per_doc.values()) == {1}


def test_inconsistent_rows_cover_every_error_kind_and_consistent_rows_say_so() -> None:
    table = load_sample()
    kinds = collections.Counter(
        kind for kind, target in zip(table["kind"].to_pylist(), table["target"].to_pylist(), strict=True) if target == 0
    )
    assert set(kinds) == ERROR_KINDS
    assert min(kinds.values()) >= 5
    assert {k for k, t in zip(table["kind"].to_pylist(), table["target"].to_pylist(), strict=True) if t == 1} == {"consistent"}


def test_documents_are_80_to_200_words_and_summaries_one_sentence() -> None:
    table = load_sample()
    for premise in set(table["premise"].to_pylist()):
        assert 80 <= len(premise.split()) <= 200
    for summary in table["hypothesis"].to_pylist():
        assert summary.endswith(".")
        assert not re.search(r"[.!?] [A-Z]", summary), summary


def test_the_sample_passes_the_label_sanity_check() -> None:
    assert check_labels(load_sample()) == []
