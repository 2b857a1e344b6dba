"""The disk refuses: a full disk, a read-only ``--out``, a damaged part.

Each is one line naming the path, the cause and what to do, no traceback (unless --debug),
no temporary file left behind; once the cause is fixed the same command completes with
every row judged exactly once. Where this machine lets a test mount a small tmpfs (root), the
disk really fills up; the injected ``ENOSPC`` test runs everywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import batchjudge.engine.checkpoint as checkpoint
from batchjudge import RunConfig, run
from batchjudge.errors import StorageError
from emulator_fixtures import batchjudge_cli


def _mount(target: Path, options: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True, check=False)
    return proc.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 KiB tmpfs (skips where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount(disk, "size=96k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _remount(disk: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(disk)], check=True)


def _cli_run(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return batchjudge_cli("run", str(data), "--out", str(out), "--provider", "local", "--quiet",
                          "--flush-rows", "300", *extra)


def _api_run(data: Path, out: Path, **options: object) -> None:
    result = run(RunConfig(inputs=[data], out=out, flush_rows=300, **options))  # type: ignore[arg-type]
    assert result.exit_code == 0


def _one_result_per_row(out: Path, rows: int) -> None:
    results = pl.read_parquet(out / "results" / "*.parquet")
    assert results.height == rows and results["row_id"].n_unique() == rows


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob("*.tmp"))


def test_a_full_disk_is_one_line_and_the_same_command_completes_once_there_is_room(
    write_pairs, small_disk: Path
) -> None:
    data = write_pairs(3000)
    out = small_disk / "run"
    full = _cli_run(data, out)
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr
    assert "No space left on device (ENOSPC); the disk is full: free some space" in lines[0]
    assert str(out / "results") in lines[0] or str(out) in lines[0]
    assert _leftovers(out) == []
    _remount(small_disk, "size=64m")
    _api_run(data, out)
    _one_result_per_row(out, 3000)


def test_a_read_only_out_is_one_line_naming_it(write_pairs, small_disk: Path) -> None:
    data = write_pairs(50)
    out = small_disk / "run"
    _api_run(data, out, limit=20)
    _remount(small_disk, "ro")
    refused = _cli_run(data, out)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert f"{out}: cannot open the run directory for writing: Read-only file system (EROFS)" in refused.stderr
    assert "use a writable --out" in refused.stderr
    _remount(small_disk, "rw")
    _api_run(data, out)
    _one_result_per_row(out, 50)


def test_debug_shows_the_traceback_of_an_environment_error(write_pairs, small_disk: Path) -> None:
    _remount(small_disk, "ro")
    proc = _cli_run(write_pairs(5), small_disk / "run", "--debug")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "StorageError" in proc.stderr


def test_an_injected_enospc_in_the_writer_leaves_no_temp_file_and_resumes(
    write_pairs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's fsync fails (as on a full disk) once two parts are written: the run stops
    with a StorageError (not an exception group), the parts before it stand, and the same
    run afterwards completes with one result per row."""
    real_fsync = os.fsync
    written = {"parts": 0}

    def fsync(fd: int) -> None:
        if written["parts"] >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written["parts"] += 1
        real_fsync(fd)

    config = RunConfig(inputs=[write_pairs(900)], out=tmp_path / "run", flush_rows=200)
    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    with pytest.raises(StorageError, match=r"cannot write .*No space left on device \(ENOSPC\)"):
        run(config)
    monkeypatch.setattr(checkpoint.os, "fsync", real_fsync)
    assert _leftovers(tmp_path / "run") == []
    result = run(config)
    assert result.complete and result.exit_code == 0
    _one_result_per_row(tmp_path / "run", 900)


def test_a_truncated_part_is_one_line_naming_it_and_deleting_it_lets_the_run_finish(
    write_pairs, tmp_path: Path
) -> None:
    data, out = write_pairs(900), tmp_path / "run"
    _api_run(data, out)
    part = sorted((out / "results").glob("part-*.parquet"))[1]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    refused = _cli_run(data, out)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(f"error: {part}: unreadable results part, damaged")
    assert "delete it (the same command judges its rows again)" in refused.stderr
    part.unlink()
    _api_run(data, out)
    _one_result_per_row(out, 900)
