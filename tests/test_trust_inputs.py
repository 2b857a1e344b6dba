"""Inputs are bound to their run: an input edited since the run read it is seen on resume.

``run.json`` records a content fingerprint of what the run read (per chunk of rows, the
columns it uses); a resume over a changed input is refused naming the file, or with
``--allow-changed-inputs`` judges the rows of the changed chunks again. A file rewritten with
the same rows (another compression, other row groups) is no change. Inputs that cannot be read
as asked (a FIFO, two roles on one column) are one line, exit 2, before anything is created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from batchjudge import InputError, JudgeReply, JudgeRequest, MockProvider, RunConfig, dry_run, run
from batchjudge.cli import app
from batchjudge.engine import inputs
from batchjudge.engine.source import open_source

from conftest import pairs_table


def ok(request: JudgeRequest) -> JudgeReply:
    return JudgeReply('{"consistency": 1, "reason": "ok"}', prompt_tokens=3, completion_tokens=2)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", *args, "--quiet"])
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def judged_rows(provider: MockProvider) -> list[int]:
    """The input row numbers a provider was asked about (``Report N: ...`` premises)."""
    return sorted(int(call.premise.split(":")[0].split()[-1]) for call in provider.calls)


def results(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "results" / "*.parquet")


def input_labels(path: Path) -> dict[str, int]:
    """``{row_id: target}`` of the input as it is now, keyed as the engine keys it."""
    return {row.row_id: row.target for batch in open_source([path]).batches() for row in batch
            if row.target is not None}


def edit(path: Path, row: int, column: str) -> None:
    """Rewrite ``path`` in place with one value of ``row`` changed (the label flipped, or the
    premise reworded), everything else as it was."""
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    values[row] = 1 - values[row] if column == "target" else values[row] + " Reworded."
    pq.write_table(table.set_column(table.schema.get_field_index(column), column,
                                    pa.array(values, table.schema.field(column).type)), path)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of 8 rows, so that a small input has several (the default is 65,536)."""
    monkeypatch.setattr(inputs, "CHUNK_ROWS", 8)
    return 8


def test_a_label_flipped_in_place_to_the_same_size_refuses_the_resume_naming_the_file(write_pairs, tmp_path):
    path, out = write_pairs(40), tmp_path / "run"
    assert cli(str(path), "--out", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in [out / "run.json", *sorted((out / "results").iterdir())]}
    size = path.stat().st_size
    table = pq.read_table(path)
    flipped = pa.array([1 - t for t in table.column("target").to_pylist()], pa.int64())
    pq.write_table(table.set_column(2, "target", flipped), path)
    assert path.stat().st_size == size  # the old guard (file sizes) cannot see this edit

    code, output = cli(str(path), "--out", str(out))
    line = one_error_line(output)
    assert code == 2
    assert str(path) in line and "changed since the run read it" in line and "--allow-changed-inputs" in line
    assert {p.name: p.read_bytes() for p in [out / "run.json", *sorted((out / "results").iterdir())]} == before


@pytest.mark.parametrize("column", ["target", "premise"])
def test_allow_changed_inputs_judges_again_the_rows_of_the_changed_chunk_only(write_pairs, tmp_path, small_chunks,
                                                                            column):
    path, out = write_pairs(40), tmp_path / "run"
    run(RunConfig(inputs=[path], out=out), provider=MockProvider(ok))
    edit(path, 13, column)  # in chunk 1: rows 8-15

    with pytest.raises(InputError, match="1 of 5 chunk"):
        run(RunConfig(inputs=[path], out=out), provider=MockProvider(ok))
    with pytest.raises(InputError, match="1 of 5 chunk"):
        dry_run(RunConfig(inputs=[path], out=out), provider=MockProvider(ok))
    assert dry_run(RunConfig(inputs=[path], out=out, allow_changed_inputs=True),
                   provider=MockProvider(ok)).to_judge == 8

    again = MockProvider(ok)
    result = run(RunConfig(inputs=[path], out=out, allow_changed_inputs=True), provider=again)
    assert judged_rows(again) == list(range(8, 16))
    assert result.complete and result.counts["done"] == 40
    df = results(out)  # one result a row, each against the row as it is now (a reworded row's old key is gone)
    assert df.height == 40 and dict(zip(df["row_id"], df["target"], strict=True)) == input_labels(path)

    quiet = MockProvider(ok)
    run(RunConfig(inputs=[path], out=out), provider=quiet)  # the new content is recorded
    assert quiet.calls == []


def test_the_same_rows_rewritten_another_way_resume_with_nothing_sent(write_pairs, tmp_path):
    path, out = write_pairs(30), tmp_path / "run"
    run(RunConfig(inputs=[path], out=out), provider=MockProvider(ok))
    size = path.stat().st_size
    table = pq.read_table(path)
    narrow = pa.schema([("premise", pa.large_string()), ("hypothesis", pa.string()), ("target", pa.int8())])
    pq.write_table(table.cast(narrow), path, compression="gzip", row_group_size=7, use_dictionary=False)
    assert path.stat().st_size != size

    again = MockProvider(ok)
    result = run(RunConfig(inputs=[path], out=out), provider=again)
    assert again.calls == [] and result.complete


def test_appended_rows_are_refused_and_judged_with_their_chunk_when_allowed(write_pairs, tmp_path, small_chunks):
    path, out = write_pairs(30), tmp_path / "run"
    run(RunConfig(inputs=[path], out=out), provider=MockProvider(ok))
    write_pairs(35)  # the same 30 rows, then 5 more

    with pytest.raises(InputError, match=r"2 of 5 chunk.*35 rows now, 30 before"):
        run(RunConfig(inputs=[path], out=out), provider=MockProvider(ok))
    again = MockProvider(ok)
    result = run(RunConfig(inputs=[path], out=out, allow_changed_inputs=True), provider=again)
    assert judged_rows(again) == list(range(24, 35))  # the grown chunk 3 (rows 24-31) and the new chunk 4
    assert result.complete and results(out).height == 35


def test_a_run_json_from_before_input_fingerprints_resumes_and_records_one(write_pairs, tmp_path):
    path, out = write_pairs(10), tmp_path / "run"
    run(RunConfig(inputs=[path], out=out), provider=MockProvider(ok))
    meta = json.loads((out / "run.json").read_text())
    meta.pop("inputs")
    meta["fingerprint"]["dataset"] = [{"file": "pairs.parquet", "size": 1}]  # files and sizes, as recorded then
    (out / "run.json").write_text(json.dumps(meta))

    again = MockProvider(ok)
    assert run(RunConfig(inputs=[path], out=out), provider=again).complete and again.calls == []
    recorded = json.loads((out / "run.json").read_text())["inputs"]
    assert recorded["chunk_rows"] == 65_536 and recorded["files"][0]["file"] == "pairs.parquet"
    assert recorded["files"][0]["rows"] == 10 and len(recorded["files"][0]["chunks"]) == 1


def test_the_fingerprint_depends_on_the_values_only_and_sees_each_used_column(tmp_path):
    table = pairs_table(50).append_column("id", pa.array(range(50), pa.int64()))
    pq.write_table(table, tmp_path / "a.parquet")
    as_text = table.set_column(3, "id", pa.array([str(i) for i in range(50)]))  # the engine keys 7 and "7" alike
    pq.write_table(as_text, tmp_path / "b.parquet", row_group_size=9, compression="brotli")

    def chunks(path: Path, batch_rows: int) -> list[str]:
        source = open_source([path])
        digest = inputs.InputDigest(source, chunk_rows=16)
        for file, start, batch in source.arrow_batches(batch_rows):
            digest.update(file, start, batch)
        record: list[str] = digest.record()["files"][0]["chunks"]
        return record

    base = chunks(tmp_path / "a.parquet", 2048)
    assert len(base) == 4 and chunks(tmp_path / "b.parquet", 5) == base
    for column, value in [("premise", None), ("hypothesis", "x"), ("target", None), ("id", 99)]:
        changed = table.set_column(table.schema.get_field_index(column), column,
                                   pa.array([value if i == 20 else v for i, v in enumerate(table.column(column).to_pylist())],
                                            table.schema.field(column).type))
        pq.write_table(changed, tmp_path / "c.parquet")
        assert [a == b for a, b in zip(chunks(tmp_path / "c.parquet", 7), base, strict=True)] == [True, False, True, True]


def test_a_fifo_as_input_is_one_line_exit_2_and_no_hang(tmp_path):
    fifo = tmp_path / "pairs.parquet"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "batchjudge", "run", str(fifo), "--out", str(tmp_path / "run"), "-q"],
                          capture_output=True, text=True, timeout=60, env=env)
    line = one_error_line(done.stdout + done.stderr)
    assert done.returncode == 2 and str(fifo) in line and "not a regular file (a FIFO)" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("spec", "clash"), [
    ("premise=hypothesis,hypothesis=hypothesis", "premise and hypothesis both read column 'hypothesis'"),
    ("premise=hypothesis", "premise and hypothesis both read column 'hypothesis'"),
    ("id=premise", "premise and id both read column 'premise'"),
])
def test_two_roles_on_one_column_is_one_line_naming_the_option(write_pairs, tmp_path, spec, clash):
    code, output = cli(str(write_pairs(5)), "--out", str(tmp_path / "run"), "--columns", spec)
    line = one_error_line(output)
    assert code == 2 and "--columns" in line and clash in line
    assert not (tmp_path / "run").exists()
