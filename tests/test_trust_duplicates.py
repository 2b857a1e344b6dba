"""One result per id: an input that gives one id to several rows is refused before anything
is sent or written (exit 2), naming the first ids and how many."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchjudge import InputError, JudgeReply, MockProvider, RunConfig, run
from conftest import pairs_table
from emulator_fixtures import batchjudge_cli


def _with_ids(path: Path, ids: list[object], start: int = 0) -> Path:
    table = pairs_table(len(ids), start=start).append_column("id", pa.array(ids))
    pq.write_table(table, path)
    return path


def _counting_provider() -> tuple[MockProvider, list[str]]:
    sent: list[str] = []

    def answer(request):  # type: ignore[no-untyped-def]
        sent.append(request.row_id)
        return JudgeReply('{"consistency": 1}')

    return MockProvider(answer), sent


def test_duplicate_ids_are_refused_naming_them_before_anything_is_sent(tmp_path: Path) -> None:
    data = _with_ids(tmp_path / "ids.parquet", ["d1", "d1", "d2", "d2", "d3"])
    proc = batchjudge_cli("run", str(data), "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("error: 2 id(s) in column 'id' appear on more than one row (2 extra row(s)): ")
    assert "'d1' ×2 (ids.parquet row 0, ids.parquet row 1); 'd2' ×2 (ids.parquet row 2, ids.parquet row 3)" in line
    assert "make every id unique" in line
    assert not (tmp_path / "run").exists()


def test_many_duplicates_are_summarised_and_integer_ids_count_too(tmp_path: Path) -> None:
    ids = [i % 40 for i in range(100)]  # 40 ids, 60 extra rows
    data = _with_ids(tmp_path / "ints.parquet", ids)
    provider, sent = _counting_provider()
    with pytest.raises(InputError, match=r"^40 id\(s\) .* \(60 extra row\(s\)\): '0' ×3 .*; and 35 more — "):
        run(RunConfig(inputs=[data], out=tmp_path / "run"), provider=provider)
    assert sent == []


def test_duplicates_across_files_are_found_and_null_ids_are_not_duplicates(tmp_path: Path) -> None:
    first = _with_ids(tmp_path / "a.parquet", ["x", None, "y"])
    second = _with_ids(tmp_path / "b.parquet", ["z", None, "y"])
    provider, _ = _counting_provider()
    with pytest.raises(InputError, match=r"^1 id\(s\) .*'y' ×2 \(a.parquet row 2, b.parquet row 2\)"):
        run(RunConfig(inputs=[first, second], out=tmp_path / "run"), provider=provider)
    provider, sent = _counting_provider()
    result = run(RunConfig(inputs=[first, _with_ids(tmp_path / "c.parquet", ["z", None, "w"], start=10)],
                           out=tmp_path / "ok"), provider=provider)
    assert result.complete and len(sent) == 4  # the two null-id rows fail alone, with their reason
    assert result.counts["failed"] == 2


def test_the_same_file_given_under_two_folders_is_refused(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        pq.write_table(pairs_table(3), tmp_path / folder / "x.parquet")
    provider, sent = _counting_provider()
    with pytest.raises(InputError, match=r"3 row\(s\) appear twice: two input files share a relative path"):
        run(RunConfig(inputs=[tmp_path / "a", tmp_path / "b"], out=tmp_path / "run"), provider=provider)
    assert sent == []


def test_unique_ids_are_accepted_with_or_without_the_label_check(tmp_path: Path) -> None:
    data = _with_ids(tmp_path / "ids.parquet", [f"id-{i}" for i in range(50)])
    provider, sent = _counting_provider()
    result = run(RunConfig(inputs=[data], out=tmp_path / "run", check_labels=False), provider=provider)
    assert result.complete and sorted(sent) == sorted(f"id-{i}" for i in range(50))
