"""A results directory that checks itself: what is in ``results/`` is the engine's, whole, and
holds each row once; ``run.json`` and ``--overwrite`` mean what they say."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchjudge import CheckpointError, InputError, RunConfig, run
from batchjudge.engine.checkpoint import RunDir
from batchjudge.report.loading import load_run
from emulator_fixtures import batchjudge_cli


def _finished_run(write_pairs, tmp_path: Path, rows: int = 600) -> tuple[RunConfig, Path]:
    config = RunConfig(inputs=[write_pairs(rows)], out=tmp_path / "run", flush_rows=200)
    assert run(config).complete
    return config, tmp_path / "run"


def _parts(out: Path) -> list[Path]:
    return sorted((out / "results").glob("part-*.parquet"))


def test_a_copied_part_is_refused_naming_it_never_counted_twice(write_pairs, tmp_path: Path) -> None:
    config, out = _finished_run(write_pairs, tmp_path)
    shutil.copy(_parts(out)[0], out / "results" / "part-000050.parquet")
    with pytest.raises(CheckpointError, match=r"200 row id\(s\) have more than one result .*'part-000050.parquet'"):
        run(config)
    with pytest.raises(InputError, match=r"200 row id\(s\) have more than one result"):
        load_run(out)
    (out / "results" / "part-000050.parquet").unlink()
    result = run(config)
    assert result.complete and result.counts["done"] == 600


def test_a_file_that_is_not_a_part_is_named_in_one_line(write_pairs, tmp_path: Path) -> None:
    config, out = _finished_run(write_pairs, tmp_path)
    shutil.copy(_parts(out)[0], out / "results" / "part-000001 (copy).parquet")
    (out / "results" / ".DS_Store").write_text("hidden files are the system's, and skipped")
    proc = batchjudge_cli("run", *map(str, config.inputs), "--out", str(out), "--quiet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"error: {out / 'results'}: 'part-000001 (copy).parquet' not written by batchjudge (only "
        "part-NNNNNN.parquet files belong here); move them out of results/, then run the same command again"
    )
    with pytest.raises(InputError, match=r"'part-000001 \(copy\).parquet' not written by batchjudge"):
        load_run(out)


def test_flipped_bits_in_a_recorded_part_are_always_caught_naming_it(write_pairs, tmp_path: Path) -> None:
    """1-3 bits flipped at random places, 100 times: run.json records each part's digest, so
    every damaged part is refused naming it (damaged, or not the part recorded: a flip in
    padding or unused statistics), never read, as itself or as other rows. (Unrecorded parts,
    which only a crash leaves, are the property tests' in test_trust_rundir.py.)"""
    _, out = _finished_run(write_pairs, tmp_path)
    part = _parts(out)[0]
    pristine = part.read_bytes()
    rng = random.Random(10)
    for _ in range(100):
        damaged = bytearray(pristine)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        part.write_bytes(bytes(damaged))
        with RunDir(out) as run_dir, pytest.raises(CheckpointError) as refused:
            run_dir.done_keys()
        assert str(refused.value).startswith(f"{part}: ")
        assert "delete it (the same command judges its rows again)" in str(refused.value)
    part.write_bytes(pristine)
    with RunDir(out) as run_dir:
        assert run_dir.done_keys()[1] == {"ok": 600}


def test_parts_without_run_json_are_refused_unless_overwrite(write_pairs, tmp_path: Path) -> None:
    config, out = _finished_run(write_pairs, tmp_path)
    (out / "run.json").unlink()
    other = RunConfig(inputs=config.inputs, out=out, provider="mistral", api_key="sk-unused-test-key",
                      base_url="http://127.0.0.1:9")
    with pytest.raises(CheckpointError, match="results/ holds results but run.json is missing"):
        run(other)
    result = run(RunConfig(inputs=config.inputs, out=out, overwrite=True, flush_rows=200))
    assert result.complete and result.stats["done_before"] == 0 and result.stats["finished"] == 600


def test_overwrite_clears_a_garbled_run_json_and_every_old_part(write_pairs, tmp_path: Path) -> None:
    config, out = _finished_run(write_pairs, tmp_path)
    assert len(_parts(out)) == 3
    (out / "run.json").write_text('{"fingerprint": ')
    with pytest.raises(CheckpointError, match="run.json: damaged .*pass --overwrite to start over"):
        run(config)
    fresh = RunConfig(inputs=[write_pairs(100, name="other.parquet")], out=out, overwrite=True)
    result = run(fresh)
    assert result.complete and result.counts["done"] == 100 and result.stats["done_before"] == 0
    assert [p.name for p in _parts(out)] == ["part-000000.parquet"]
    assert load_run(out).results.height == 100


def test_a_part_keeps_every_value_and_writing_it_never_imports_pandas(tmp_path: Path) -> None:
    """Parts are built without pyarrow's pandas import, which took 0.25-0.3 s of CPU from the
    senders at a run's first flush; every type of the schema round-trips, nulls included."""
    script = f"""
import sys
from pathlib import Path
from batchjudge.core.results import RESULT_COLUMNS
from batchjudge.engine.checkpoint import RunDir, read_part
(Path({str(tmp_path)!r}) / "results").mkdir()
columns = {{c: [None, None] for c in RESULT_COLUMNS}}
columns.update(row_id=["a", "b"], status=["ok", "failed"], verdict=[1, None], score=[0.25, None],
               attempts=[1, 3], prompt_tokens=[2**40, 0], reason=["é", None], target=[-1, 0])
part = RunDir({str(tmp_path)!r}).write_part(columns)
table = read_part(part)
assert table.to_pydict() == columns, table.to_pydict()
assert "pandas" not in sys.modules, "writing a part imported pandas"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
