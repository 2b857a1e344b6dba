"""Specification of the synthetic dataset generator (``batchjudge.datasets.synth``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchjudge.datasets import synth
from batchjudge.datasets.synth import (
    ERROR_KINDS,
    ROWS_PER_DOC,
    SYNTH_COLUMNS,
    SYNTH_SCHEMA,
    synth_batches,
    write_synth,
)
from batchjudge.errors import ConfigError


def _table(rows: int, **kwargs: int) -> pa.Table:
    return pa.Table.from_batches(list(synth_batches(rows, **kwargs)), schema=SYNTH_SCHEMA)


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return _table(4000).to_pylist()


def test_same_seed_gives_identical_batches() -> None:
    assert _table(300, seed=7).equals(_table(300, seed=7))


def test_different_seeds_give_different_data() -> None:
    a, b = _table(50, seed=1), _table(50, seed=2)
    assert a.column("premise").to_pylist() != b.column("premise").to_pylist()


def test_a_row_depends_only_on_seed_and_index_not_on_batching_or_start() -> None:
    whole = _table(200, seed=3, batch_size=64)
    part = _table(77, seed=3, start=61, batch_size=10)
    assert part.equals(whole.slice(61, 77))


def test_batches_have_the_fixed_schema_and_column_order() -> None:
    batch = next(synth_batches(10))
    assert batch.schema == SYNTH_SCHEMA
    assert tuple(batch.schema.names) == SYNTH_COLUMNS


def test_batch_size_bounds_every_batch() -> None:
    sizes = [b.num_rows for b in synth_batches(1000, batch_size=300)]
    assert sizes == [300, 300, 300, 100]


def test_classes_are_exactly_balanced_per_document(sample: list[dict]) -> None:
    per_doc: dict[str, list[int]] = {}
    for row in sample:
        per_doc.setdefault(row["doc_id"], []).append(row["target"])
    assert all(len(t) == ROWS_PER_DOC and sum(t) == ROWS_PER_DOC // 2 for t in per_doc.values())


def test_rows_of_a_document_share_its_text_and_split(sample: list[dict]) -> None:
    seen: dict[str, tuple[str, str]] = {}
    for row in sample:
        key = (row["premise"], row["split"])
        assert seen.setdefault(row["doc_id"], key) == key


def test_ids_are_unique(sample: list[dict]) -> None:
    assert len({row["id"] for row in sample}) == len(sample)


def test_no_document_repeats_a_summary(sample: list[dict]) -> None:
    pairs = {(row["premise"], row["hypothesis"]) for row in sample}
    assert len(pairs) == len(sample)


def test_every_error_kind_occurs_and_kind_agrees_with_target(sample: list[dict]) -> None:
    kinds = Counter(row["kind"] for row in sample)
    assert set(kinds) == {"consistent", *ERROR_KINDS}
    assert all((row["kind"] == "consistent") == (row["target"] == 1) for row in sample)
    # Each error kind fits only some summary templates; none is rare.
    assert min(kinds[k] for k in ERROR_KINDS) > 0.04 * len(sample) / 2


def test_documents_have_news_article_lengths_and_summaries_are_short(sample: list[dict]) -> None:
    doc_words = [len(row["premise"].split()) for row in sample[::ROWS_PER_DOC]]
    assert 100 <= min(doc_words) and max(doc_words) <= 650
    assert 250 <= sorted(doc_words)[len(doc_words) // 2] <= 400
    summary_sentences = [row["hypothesis"].count(". ") + 1 for row in sample]
    assert max(summary_sentences) <= 2


def test_both_splits_exist_with_validation_a_minority(sample: list[dict]) -> None:
    splits = Counter(row["split"] for row in sample)
    assert set(splits) == {"train", "val"}
    assert 0.03 < splits["val"] / len(sample) < 0.2


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+", text))


def test_number_swaps_state_a_number_the_document_never_mentions(sample: list[dict]) -> None:
    rows = [row for row in sample if row["kind"] == "number_swap"]
    assert rows
    assert all(_numbers(row["hypothesis"]) - _numbers(row["premise"]) for row in rows)


def test_consistent_summaries_state_only_numbers_from_the_document(sample: list[dict]) -> None:
    rows = [row for row in sample if row["kind"] == "consistent"]
    assert all(_numbers(row["hypothesis"]) <= _numbers(row["premise"]) for row in rows)


def _names(text: str) -> set[str]:
    """Capitalised words that do not start a sentence: the names a text mentions."""
    return set(re.findall(r"(?<![.\n] )(?<!^)\b[A-Z][a-z]+", text, flags=re.MULTILINE))


def _words(text: str) -> set[str]:
    return set(re.findall(r"\b[A-Z][a-z]+", text))


def test_unsupported_names_are_absent_from_the_document(sample: list[dict]) -> None:
    rows = [row for row in sample if row["kind"] == "unsupported_name"]
    assert rows
    missing = [bool(_names(row["hypothesis"]) - _words(row["premise"])) for row in rows]
    assert sum(missing) / len(rows) > 0.95


_NATIONS = {"English", "Welsh", "Scottish", "Northern", "Irish"}


def test_consistent_summaries_mention_only_names_from_the_document(sample: list[dict]) -> None:
    rows = [row for row in sample if row["kind"] == "consistent"]
    # ... apart from where a place is, which real summaries add from world knowledge.
    assert all(_names(row["hypothesis"]) - _NATIONS <= _words(row["premise"]) for row in rows)


def test_world_knowledge_appears_equally_in_both_classes(sample: list[dict]) -> None:
    rate = [
        sum(" city of " in row["hypothesis"] for row in sample if row["target"] == t)
        / sum(row["target"] == t for row in sample)
        for t in (0, 1)
    ]
    assert 0.05 < rate[0] and 0.05 < rate[1] and abs(rate[0] - rate[1]) < 0.05


def test_entity_swaps_use_only_names_from_the_document(sample: list[dict]) -> None:
    rows = [row for row in sample if row["kind"] == "entity_swap"]
    assert rows
    # Every name is in the document: the error is in how they are combined.
    assert all(_names(row["hypothesis"]) - _NATIONS <= _words(row["premise"]) for row in rows)


def test_write_synth_writes_the_stream_as_atomic_shards(tmp_path: Path) -> None:
    paths = write_synth(tmp_path / "out", rows=1001, shards=3, seed=5)
    assert [p.name for p in paths] == [f"part-{k:05d}.parquet" for k in range(3)]
    assert not [p for p in (tmp_path / "out").iterdir() if p not in paths]
    table = pq.read_table(paths[0].parent)
    assert table.schema == SYNTH_SCHEMA
    assert table.equals(_table(1001, seed=5))
    assert [pq.read_metadata(p).num_rows for p in paths] == [333, 334, 334]


def test_write_synth_overwrites_its_own_shards_but_refuses_foreign_ones(tmp_path: Path) -> None:
    write_synth(tmp_path, rows=20, shards=2)
    write_synth(tmp_path, rows=20, shards=2, seed=1)
    with pytest.raises(ConfigError, match="part-00001.parquet"):
        write_synth(tmp_path, rows=20, shards=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 0}, "rows"),
        ({"rows": 5, "shards": 6}, "shards"),
        ({"rows": 5, "seed": -1}, "seed"),
    ],
)
def test_write_synth_rejects_impossible_requests(
    tmp_path: Path, kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        write_synth(tmp_path, **kwargs)


def test_an_output_directory_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the output directory"):
        write_synth(tmp_path / "file" / "out", rows=10)


def test_a_shard_that_cannot_be_written_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "part-00000.parquet").mkdir()  # in the way of the rename, even for root
    with pytest.raises(ConfigError, match="part-00000.parquet"):
        write_synth(tmp_path, rows=10)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_output_path_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        write_synth(tmp_path / "file", rows=10)


def test_progress_reports_rows_written_after_each_batch_up_to_the_total(tmp_path: Path) -> None:
    seen: list[int] = []
    write_synth(tmp_path, rows=20_000, shards=2, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 20_000
    assert len(seen) >= 3  # batches of 8,192 rows in two shards of 10,000: 8192, 10000, ...


def test_progress_counts_the_rows_of_every_worker_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synth, "_PARALLEL_MIN_ROWS", 1)  # the worker pool, on a small job
    seen: list[int] = []
    paths = write_synth(tmp_path, rows=30_000, shards=3, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 30_000
    assert pq.read_table(paths[0].parent).equals(_table(30_000))


def test_data_synth_shows_a_progress_bar_on_stderr_and_the_summary_on_stdout(tmp_path: Path) -> None:
    env = {**os.environ, "TTY_COMPATIBLE": "1", "COLUMNS": "120"}  # rich draws as on a terminal
    result = subprocess.run(
        [sys.executable, "-m", "batchjudge", "data", "synth", "--rows", "20000", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "generating" in result.stderr and "20000/20000" in result.stderr
    assert "wrote 20000 rows in 1 shard(s)" in result.stdout and "generating" not in result.stdout
