"""A run directory holds only its own parts, and only one writer.

Each part carries its run's id and ``run.json`` records each part's digest: a part from
another run (another model, other rows, the same rows), a part whose footer renamed a column,
or a part whose bytes changed is refused by ``run``, ``report`` and ``status`` alike, with
one line naming it and exit 2, and never counted. A part a crash left unrecorded is this
run's when it carries its id; a deleted part is judged again. The lock is held on the
directory itself, so deleting ``.lock`` lets no second writer in.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from emulator_fixtures import cli_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from batchjudge import JudgeReply, JudgeRequest, MockProvider, RunConfig, TransientError, run, run_status
from batchjudge.cli import app
from batchjudge.core.results import RESULT_COLUMNS
from batchjudge.datasets.synth import write_synth
from batchjudge.engine.checkpoint import RunDir
from batchjudge.errors import CheckpointError, InputError
from batchjudge.report.loading import load_run

runner = CliRunner()


def _ok(request: JudgeRequest) -> JudgeReply:
    return JudgeReply('{"consistency": 1, "reason": "ok"}', prompt_tokens=3, completion_tokens=2, model="other-model")


def _cli(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], terminal_width=400)


def _meta(out: Path) -> dict[str, Any]:
    return json.loads((out / "run.json").read_text())


def _part(out: Path, n: int) -> Path:
    return out / "results" / f"part-{n:06d}.parquet"


def _unrecord(out: Path, name: str) -> None:
    """As a crash between a part's rename and the next run.json leaves it."""
    meta = _meta(out)
    del meta["parts"][name]
    (out / "run.json").write_text(json.dumps(meta))


def _half_run(write_pairs: Callable[..., Path], out: Path) -> RunConfig:
    """The first 20 of 40 rows judged (one part); the same command without --limit resumes."""
    config = RunConfig(inputs=[write_pairs(40)], out=out, flush_rows=20)
    assert run(dataclasses.replace(config, limit=20)).counts["done"] == 20
    return config


def _refused_everywhere(config: RunConfig, part: Path, why: str) -> None:
    """``run`` (resuming), its dry run, ``report`` and ``status``: exit 2 and one line naming
    ``part``."""
    out = Path(config.out)
    resume = ("run", *config.inputs, "--out", out, "--flush-rows", 20, "--quiet")
    for args in (resume, (*resume, "--dry-run"), ("report", out), ("status", out)):
        result = _cli(*args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2, (args, result.output)
        assert len(lines) == 1 and lines[0].startswith(f"error: {part}: ") and why in lines[0], (args, lines)


def _one_result_per_row_all_ours(config: RunConfig, rows: int) -> None:
    results = load_run(config.out).results
    assert results.height == rows and results["row_id"].n_unique() == rows
    assert results["model"].unique().to_list() == ["local-judge"]


@pytest.mark.parametrize("theirs", ["another model", "other rows", "the same rows from another run"])
def test_a_part_of_another_run_is_refused_everywhere_and_never_counted(
    write_pairs: Callable[..., Path], tmp_path: Path, theirs: str
) -> None:
    config = _half_run(write_pairs, tmp_path / "ours")
    other = tmp_path / "theirs"
    if theirs == "another model":
        run(RunConfig(inputs=config.inputs, out=other, flush_rows=20), provider=MockProvider(_ok))
    elif theirs == "other rows":
        run(RunConfig(inputs=[write_pairs(40, name="other.parquet", start=1000)], out=other, flush_rows=20))
    else:
        run(RunConfig(inputs=config.inputs, out=other, flush_rows=20))
    copied = shutil.copy(_part(other, 1), _part(tmp_path / "ours", 1))  # the rows ours has not judged yet
    _refused_everywhere(config, Path(copied), "written by another run (run id ")
    Path(copied).unlink()
    result = run(config)
    assert result.complete and result.stats["done_before"] == 20
    _one_result_per_row_all_ours(config, 40)


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "unrecorded"])
def test_a_part_whose_footer_renames_a_column_is_refused_everywhere(
    write_pairs: Callable[..., Path], tmp_path: Path, recorded: bool
) -> None:
    """``verdict`` → ``vereict`` in the footer (one bit flipped: the issue's 1.3% of silent
    flips), in a recorded part and in one a crash left unrecorded."""
    config = RunConfig(inputs=[write_pairs(40)], out=tmp_path / "run", flush_rows=20)
    assert run(config).complete
    part = _part(tmp_path / "run", 1)
    part.write_bytes(part.read_bytes().replace(b"verdict", b"vereict"))
    if not recorded:
        _unrecord(tmp_path / "run", part.name)
    _refused_everywhere(config, part, "unreadable results part, damaged (column 'vereict' is not a result column)")


def test_a_part_a_crash_left_unrecorded_is_this_runs_and_recorded_again(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    config = _half_run(write_pairs, tmp_path / "run")
    out = Path(config.out)
    digest = _meta(out)["parts"]["part-000000.parquet"]
    _unrecord(out, "part-000000.parquet")
    assert run_status(out).done == 20 and load_run(out).results.height == 20
    result = run(config)
    assert result.complete and result.stats["done_before"] == 20
    assert _meta(out)["parts"]["part-000000.parquet"] == digest and len(_meta(out)["parts"]) == 2
    _one_result_per_row_all_ours(config, 40)


def test_a_deleted_part_is_judged_again_and_status_never_calls_the_run_complete_meanwhile(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    config = RunConfig(inputs=[write_pairs(40)], out=tmp_path / "run", flush_rows=20)
    assert run(config).complete
    _part(tmp_path / "run", 0).unlink()  # the documented way to judge a part's rows again
    status = run_status(tmp_path / "run")
    assert status.state == "stopped" and (status.done, status.total) == (20, 40)
    result = run(config)
    assert result.complete and result.stats["done_before"] == 20 and result.stats["finished"] == 20
    assert sorted(_meta(tmp_path / "run")["parts"]) == ["part-000001.parquet", "part-000002.parquet"]
    _one_result_per_row_all_ours(config, 40)


def test_a_run_from_before_run_ids_adopts_one_and_binds_its_parts(write_pairs: Callable[..., Path], tmp_path: Path) -> None:
    """A run.json and parts without run ids (older versions): read as they are, and the next
    session records their digests and gives the run an id its new parts carry; from then
    on a part without the id is refused."""
    config = _half_run(write_pairs, tmp_path / "run")
    out = Path(config.out)
    old = _part(out, 0)
    pq.write_table(pq.read_table(old).replace_schema_metadata(None), old)
    meta = _meta(out)
    del meta["run_id"], meta["parts"]
    (out / "run.json").write_text(json.dumps(meta))
    assert load_run(out).results.height == 20
    assert run(config).complete
    meta = _meta(out)
    assert sorted(meta["parts"]) == ["part-000000.parquet", "part-000001.parquet"]
    assert pq.read_schema(_part(out, 1)).metadata[b"batchjudge.run"].decode() == meta["run_id"]
    _one_result_per_row_all_ours(config, 40)
    shutil.copy(old, _part(out, 7))
    _refused_everywhere(config, _part(out, 7), "not recorded in run.json and carries no run id")


def test_a_part_with_a_run_id_in_a_run_from_before_run_ids_is_refused(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    config = _half_run(write_pairs, tmp_path / "run")
    out = Path(config.out)
    meta = _meta(out)
    del meta["run_id"], meta["parts"]
    (out / "run.json").write_text(json.dumps(meta))
    _refused_everywhere(config, _part(out, 0), "but this run's run.json names no run")


_CRASH_POINTS = ["staging", "recording the staged parts", "first rename", "second rename", "settling run.json",
                 "removing the old parts"]  # fmt: skip


class _Crash(Exception):
    """A kill -9 at that point: nothing after it runs."""


@pytest.mark.parametrize("point", _CRASH_POINTS)
def test_retry_failed_recovers_from_a_crash_at_each_point_of_its_swap(
    write_pairs: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """``--retry-failed`` stages the parts without their failed rows, records their digests
    beside the current ones, swaps the folders with two renames and settles run.json: after
    a crash at any of these points the same command finishes with one result per row, and
    run.json records exactly the parts present."""
    out = tmp_path / "run"

    def flaky(request: JudgeRequest) -> JudgeReply:
        if int(request.premise.split(":")[0].split()[-1]) % 3 == 0:
            raise TransientError("down", status=503)
        return _ok(request)

    config = RunConfig(inputs=[write_pairs(30)], out=out, flush_rows=10, max_retries=0)
    run(config, provider=MockProvider(flaky))
    retry = dataclasses.replace(config, retry_failed=True)
    real_replace, real_rmtree = os.replace, shutil.rmtree
    seen = {"staged": 0, "run.json": 0}

    def replace(src: Any, dst: Any) -> None:
        src, dst = Path(src), Path(dst)
        if dst.parent.name == "results.new":
            seen["staged"] += 1
        if dst.name == "run.json":
            seen["run.json"] += 1
        if ((point == "staging" and seen["staged"] == 2)
                or (point == "recording the staged parts" and seen["run.json"] == 1)
                or (point == "first rename" and dst.name == "results.old")
                or (point == "second rename" and src.name == "results.new")
                or (point == "settling run.json" and seen["run.json"] == 2)):  # fmt: skip
            raise _Crash(point)
        real_replace(src, dst)

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        if point == "removing the old parts" and Path(path).name == "results.old":
            raise _Crash(point)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(_Crash):
        run(retry, provider=MockProvider(_ok))
    monkeypatch.undo()
    assert run_status(out).done == load_run(out).results.height  # a look sees the set recovery keeps
    result = run(retry, provider=MockProvider(_ok))
    assert result.complete and result.counts == {"ok": 30, "parse_error": 0, "failed": 0, "done": 30, "total": 30}
    results = load_run(out).results
    assert results.height == 30 and results["row_id"].n_unique() == 30 and set(results["status"]) == {"ok"}
    meta = _meta(out)
    assert sorted(meta["parts"]) == sorted(p.name for p in (out / "results").iterdir()) and "parts_staged" not in meta
    assert sorted(p.name for p in out.iterdir()) == [".lock", "results", "run.json"]


def test_deleting_the_lock_mid_run_lets_no_second_writer_in(write_pairs: Callable[..., Path], tmp_path: Path) -> None:
    """Two real processes: the first run is paused once it wrote a part, ``.lock`` deleted,
    and the same command started again: refused with exit 2 while the first holds the
    directory; the first then finishes, puts ``.lock`` back, and every row has one result."""
    data, out = write_pairs(80), tmp_path / "run"
    argv = [*cli_command(), "run", str(data), "--out", str(out), "--rps", "40", "--concurrency", "2",
            "--flush-seconds", "0.1", "--quiet"]  # fmt: skip
    env = {**os.environ, "WEAVE_DISABLED": "true"}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list((out / "results").glob("part-*.parquet")):
            assert first.poll() is None and time.monotonic() < deadline, "the first run ended before writing a part"
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)
        (out / ".lock").unlink()
        assert run_status(out).state == "running"
        second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == f"error: {out}: another batchjudge run is writing here"
        first.send_signal(signal.SIGCONT)
        _, errors = first.communicate(timeout=60)
        assert first.returncode == 0, errors
    finally:
        first.kill()
        first.communicate()
    assert (out / ".lock").read_text().strip() == str(first.pid)
    results = pl.read_parquet(out / "results" / "*.parquet")
    assert results.height == 80 and results["row_id"].n_unique() == 80
    assert run_status(out).state == "complete"


# -- a bit flipped anywhere in a part ----------------------------------------------------


@pytest.fixture(scope="module")
def written_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[object, ...]]:
    """A real run of 12 rows in two parts, written by the engine (the local judge), and what
    the resume, the report and status read from it."""
    folder = tmp_path_factory.mktemp("flips")
    write_synth(folder / "data", rows=12, seed=5)
    assert run(RunConfig(inputs=[folder / "data"], out=folder / "run", flush_rows=6)).complete
    assert len(list((folder / "run" / "results").glob("part-*.parquet"))) == 2
    expected = _look(folder / "run")
    assert expected is not None
    return folder / "run", expected


def _look(out: Path) -> tuple[object, ...] | None:
    """What the resume (its done-set and counts), the report (every column of every row) and
    status (its counts) read, or None when all three refuse; they never disagree."""
    views: list[object] = []
    for read in (lambda: RunDir(out).done_keys(), lambda: load_run(out, raw_response=True).results,
                 lambda: dataclasses.astuple(run_status(out))[3:8]):  # fmt: skip
        try:
            views.append(read())
        except (CheckpointError, InputError) as exc:
            assert str(exc).startswith(f"{out / 'results'}/part-") and "\n" not in str(exc)
            views.append(None)
    assert sum(v is None for v in views) in (0, 3), f"run, report and status disagree: {views}"
    return None if views[0] is None else (views[0][0].tolist(), views[0][1], views[1], views[2])  # type: ignore[index]


def _same(a: tuple[object, ...] | None, b: tuple[object, ...] | None) -> bool:
    assert a is not None and b is not None
    return a[0] == b[0] and a[1] == b[1] and a[3] == b[3] and a[2].equals(b[2], null_equal=True)  # type: ignore[attr-defined]


def _flip_bits(written: tuple[Path, tuple[object, ...]], part_index: int, recorded: bool, bits: list[int]) -> bool:
    """Flip ``bits`` of one part (left unrecorded, as a crash leaves the newest, unless
    ``recorded``): True when the run, the report and status refuse it, False when what they
    read is exactly what was written. The run directory is restored afterwards."""
    out, expected = written
    part = sorted((out / "results").glob("part-*.parquet"))[part_index]
    pristine_part, pristine_meta = part.read_bytes(), (out / "run.json").read_bytes()
    try:
        if not recorded:
            _unrecord(out, part.name)
        damaged = bytearray(pristine_part)
        for bit in {b % (8 * len(damaged)) for b in bits}:  # distinct: two flips of one bit undo each other
            damaged[bit // 8] ^= 1 << bit % 8
        part.write_bytes(bytes(damaged))
        seen = _look(out)
        assert seen is None or _same(seen, expected), f"bits {bits} changed what is read"
        return seen is None
    finally:
        part.write_bytes(pristine_part)
        (out / "run.json").write_bytes(pristine_meta)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(part_index=st.sampled_from([0, 1]), recorded=st.booleans(),
       bits=st.lists(st.integers(0, 2**24), min_size=1, max_size=2))  # fmt: skip
def test_a_bit_flipped_anywhere_in_a_part_is_refused_or_changes_nothing_read(
    written_run: tuple[Path, tuple[object, ...]], part_index: int, recorded: bool, bits: list[int]
) -> None:
    refused = _flip_bits(written_run, part_index, recorded, bits)
    assert refused or not recorded, "a recorded part with a flipped bit must be refused (its digest)"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_single_bit_of_an_unrecorded_part_flipped_is_refused_or_changes_nothing(
    written_run: tuple[Path, tuple[object, ...]],
) -> None:
    """The exhaustive sweep behind the property test: each bit of the newest part, in turn."""
    size = (sorted((written_run[0] / "results").glob("part-*.parquet"))[1]).stat().st_size
    refused = sum(_flip_bits(written_run, 1, False, [bit]) for bit in range(size * 8))
    print(f"{refused} of {size * 8} single-bit flips refused, the rest read exactly as written")


def test_where_folders_cannot_be_locked_a_run_whose_lock_file_was_taken_stops_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On NFS a folder cannot be flocked: ``.lock`` alone guards the directory, and each write
    first checks it is still the run's; once another writer took it, the run stops."""
    real_flock = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EBADF, "folders cannot be locked here")
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    columns = {c: [None] for c in RESULT_COLUMNS} | {"row_id": ["a"], "status": ["ok"]}
    with RunDir(tmp_path / "run") as first:
        with pytest.raises(CheckpointError, match="another batchjudge run is writing here"), RunDir(tmp_path / "run"):
            pass
        (tmp_path / "run" / ".lock").unlink()
        first.write_part(columns)  # puts .lock back, and holds it
        assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
        (tmp_path / "run" / ".lock").unlink()
        with RunDir(tmp_path / "run"):  # got in: nothing told it otherwise
            with pytest.raises(CheckpointError, match="another batchjudge run is writing here"):
                first.write_part(columns)
            assert len(list((tmp_path / "run" / "results").glob("part-*.parquet"))) == 1


def test_a_flip_that_garbles_an_unused_metadata_key_changes_nothing_read(
    written_run: tuple[Path, tuple[object, ...]],
) -> None:
    """Found by the sweep: ``batchjudge.rows`` → ``\\xe2atchjudge.rows`` (invalid UTF-8) in the
    newest part, unrecorded, made polars panic in the report; the data is whole (the values
    digest covers the rows), so it reads exactly as written."""
    out = written_run[0]
    part = sorted((out / "results").glob("part-*.parquet"))[1]
    bit = 8 * part.read_bytes().index(b"batchjudge.rows") + 7
    assert not _flip_bits(written_run, 1, False, [bit])
