"""Grouped splits, class balancing and weighted mixing: deterministic, exact, leak-free."""

from __future__ import annotations

import collections

import pyarrow as pa
import pytest

from batchjudge.datasets.schema import DATASET_SCHEMA, dataset_table, row_ids
from batchjudge.datasets.splits import allocate, balance, grouped_split, mix
from batchjudge.errors import ConfigError, InputError


def _table(groups: list[str], targets: list[int], source: str = "t") -> pa.Table:
    hypotheses = [f"summary {i}" for i in range(len(groups))]
    return dataset_table(
        ids=row_ids(groups, hypotheses),
        doc_ids=groups,
        premises=[f"document {g}" for g in groups],
        hypotheses=hypotheses,
        targets=targets,
        source=source,
        split="all",
    )


def _random_table(seed: int, n: int = 300) -> pa.Table:
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = [f"d{g}" for g in rng.integers(0, 40, n)]
    return _table(groups, [int(t) for t in rng.integers(0, 2, n)])


@pytest.mark.parametrize("seed", range(8))
def test_grouped_split_never_puts_a_document_on_both_sides(seed: int) -> None:
    table = _random_table(seed)
    train, val = grouped_split(table, test_size=0.25, seed=seed)
    assert train.num_rows + val.num_rows == table.num_rows
    assert set(train["doc_id"].to_pylist()).isdisjoint(val["doc_id"].to_pylist())
    assert set(train["split"].to_pylist()) == {"train"}
    assert set(val["split"].to_pylist()) == {"val"}


def test_grouped_split_takes_the_requested_share_of_documents() -> None:
    table = _table([f"d{i // 2}" for i in range(200)], [i % 2 for i in range(200)])
    _, val = grouped_split(table, test_size=0.2, seed=3)
    assert len(set(val["doc_id"].to_pylist())) == 20


def test_grouped_split_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    table = _random_table(0)
    first = grouped_split(table, test_size=0.3, seed=11)[1]["doc_id"].to_pylist()
    again = grouped_split(table, test_size=0.3, seed=11)[1]["doc_id"].to_pylist()
    other = grouped_split(table, test_size=0.3, seed=12)[1]["doc_id"].to_pylist()
    assert first == again
    assert first != other


def test_grouped_split_refuses_a_single_document() -> None:
    with pytest.raises(ConfigError, match="cannot split 1"):
        grouped_split(_table(["d"] * 4, [0, 1, 0, 1]), test_size=0.5, seed=0)


@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_balance_overall_leaves_exactly_equal_classes(seed: int | None) -> None:
    table = _random_table(5)
    counts = collections.Counter(table["target"].to_pylist())
    balanced = balance(table, seed=seed)
    after = collections.Counter(balanced["target"].to_pylist())
    assert after[0] == after[1] == min(counts.values())


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_balance_by_group_equalises_classes_inside_every_document(seed: int | None) -> None:
    table = _random_table(9)
    balanced = balance(table, seed=seed, by_group=True)
    per_doc: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for doc, target in zip(balanced["doc_id"].to_pylist(), balanced["target"].to_pylist(), strict=True):
        per_doc[doc][target] += 1
    assert per_doc
    assert all(c[0] == c[1] for c in per_doc.values())
    before: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for doc, target in zip(table["doc_id"].to_pylist(), table["target"].to_pylist(), strict=True):
        before[doc][target] += 1
    kept_docs = {d for d, c in before.items() if c[0] and c[1]}
    assert set(per_doc) == kept_docs
    assert all(per_doc[d][1] == min(before[d].values()) for d in kept_docs)


def test_balance_without_seed_keeps_the_first_rows_of_each_class_in_order() -> None:
    table = _table(["a"] * 5, [1, 0, 0, 1, 0])
    kept = balance(table, seed=None)
    assert kept["hypothesis"].to_pylist() == ["summary 0", "summary 1", "summary 2", "summary 3"]


def test_balance_refuses_missing_labels() -> None:
    table = pa.table({"doc_id": ["a", "b"], "target": pa.array([1, None], pa.int8())})
    with pytest.raises(InputError, match="missing label"):
        balance(table, seed=0)


def test_allocate_splits_rows_exactly_by_weight() -> None:
    assert allocate([0.7, 0.3], 1000) == [700, 300]
    assert allocate([1, 1, 1], 10) == [4, 3, 3]
    assert sum(allocate([0.2, 0.5, 0.3], 997)) == 997


def test_mix_draws_each_part_in_proportion_and_is_reproducible() -> None:
    fib = _table([f"f{i}" for i in range(100)], [i % 2 for i in range(100)], source="fib")
    usb = _table([f"u{i}" for i in range(100)], [i % 2 for i in range(100)], source="usb")
    mixed = mix([(fib, 0.7), (usb, 0.3)], rows=50, seed=4)
    assert collections.Counter(mixed["source"].to_pylist()) == {"fib": 35, "usb": 15}
    assert len(set(mixed["id"].to_pylist())) == 50
    assert mixed.equals(mix([(fib, 0.7), (usb, 0.3)], rows=50, seed=4))
    assert mixed.schema.equals(DATASET_SCHEMA)


def test_mix_refuses_a_share_larger_than_its_table() -> None:
    small = _table(["a", "b"], [0, 1])
    with pytest.raises(ConfigError, match="has 2 rows but its weight asks for 5"):
        mix([(small, 0.5), (_random_table(1), 0.5)], rows=10, seed=0)


def test_row_ids_are_content_hashes_made_unique_within_a_table() -> None:
    ids = row_ids(["d", "d", "e"], ["same", "same", "same"])
    assert ids[0] != ids[2]
    assert ids[1] == f"{ids[0]}~2"
    assert row_ids(["d"], ["same"]) == ids[:1]
