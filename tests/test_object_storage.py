"""Inputs and run directories in object storage, against an S3 server over real HTTP (moto).

``batchjudge run s3://…/shards/ --out s3://…/runs/r1`` judges every row once, resumes
without judging any again, reads back the same way (``status``, ``report``), refuses a second
driver while the first holds the run's lease, takes over at once from a driver that is
provably gone, and never writes or shows the store's credentials.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from batchjudge.datasets.synth import write_synth
from batchjudge.engine.source import open_source
from batchjudge.engine.status import read_status
from batchjudge.errors import CheckpointError, ConfigError, InputError
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server, _moto_server, s3  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _no_storage_options() -> Iterator[None]:
    """Options set in-process by one test never reach the next."""
    from batchjudge.engine.stores import set_storage_options

    yield
    set_storage_options({})


def batchjudge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchjudge", *args], capture_output=True, text=True, timeout=120)


def shards(s3: S3Server, tmp_path: Path, rows: int = 600) -> str:
    write_synth(tmp_path / "data", rows=rows, shards=2, seed=5)
    s3.upload_folder(tmp_path / "data", "shards/")
    return s3.url("shards/")


def results_in_bucket(s3: S3Server, prefix: str) -> list[str]:
    """Every row id of every part under ``prefix``/results, read back from the bucket."""
    ids: list[str] = []
    for key in s3.keys(f"{prefix}/results/"):
        ids += pq.read_table(io.BytesIO(s3.read(key)), columns=["row_id"]).column("row_id").to_pylist()
    return ids


def run_args(inputs: str, out: str, *more: str) -> list[str]:
    return ["run", inputs, "--out", out, "--provider", "local", "--flush-rows", "150", "--quiet", *more]


def test_a_run_from_s3_into_s3_judges_each_row_once_resumes_and_reads_back_without_credentials(s3, tmp_path):
    inputs = shards(s3, tmp_path)
    out = s3.url("runs/r1")
    options = ("--storage-option", f"access_key_id={ACCESS_KEY}", "--storage-option", f"secret_access_key={SECRET_KEY}")
    first = batchjudge(*run_args(inputs, out, *options))
    assert first.returncode == 0, first.stderr
    expected = sorted(r.row_id for b in open_source([tmp_path / "data"]).batches() for r in b)
    assert sorted(results_in_bucket(s3, "runs/r1")) == expected  # row keys as for the same files on disk
    again = batchjudge(*run_args(inputs, out, *options))
    assert again.returncode == 0, again.stderr
    assert "0 rows in" in again.stderr  # nothing judged twice
    assert sorted(results_in_bucket(s3, "runs/r1")) == expected
    meta = orjson.loads(s3.read("runs/r1/run.json"))
    assert "storage_options" not in meta["config"] and meta["run_id"] and len(meta["parts"]) >= 4
    assert ".lease" not in {k.rsplit("/", 1)[-1] for k in s3.keys("runs/")}  # released at the end
    for key in s3.keys("runs/"):
        body = s3.read(key)
        assert ACCESS_KEY.encode() not in body and SECRET_KEY.encode() not in body, key
    for shown in (first, again):
        assert SECRET_KEY not in shown.stdout + shown.stderr and ACCESS_KEY not in shown.stdout + shown.stderr


def test_a_second_driver_is_refused_while_the_first_holds_the_lease(s3, tmp_path):
    from batchjudge.engine.objrundir import run_dir_at

    inputs = shards(s3, tmp_path, rows=200)
    with run_dir_at(s3.url("runs/busy")):  # this process holds the run
        second = batchjudge(*run_args(inputs, s3.url("runs/busy")))
        assert second.returncode == 2, second.stderr
        assert f"another batchjudge run is writing here (pid {os.getpid()}" in second.stderr
        assert s3.keys("runs/busy/results/") == []  # nothing committed
    assert s3.keys("runs/busy/") == []  # the lease released with the run directory


def _lease(s3: S3Server, key: str, **holder: object) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=orjson.dumps(holder))


def test_a_lease_whose_holder_died_on_this_host_is_taken_over_at_once(s3):
    import socket

    from batchjudge.engine.objrundir import run_dir_at

    from batchjudge.engine.objstore import holder_gone

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    space = Path("/proc/sys/kernel/random/boot_id").read_text().strip() + "/" + os.readlink("/proc/self/ns/pid")
    holder = {"host": socket.gethostname(), "pid_space": space, "pid": dead.pid, "started": "1", "token": "t"}
    assert not holder_gone(holder | {"pid_space": "another container/pid:[1]"})  # its pid means nothing here
    _lease(s3, "runs/x/.lease", **holder, expires=time.time() + 3600)
    with run_dir_at(s3.url("runs/x")) as run_dir:
        assert run_dir.took_over is not None and "that process is gone" in run_dir.took_over


def test_a_live_lease_from_another_host_is_refused_until_it_expires(s3):
    from batchjudge.engine.objrundir import run_dir_at

    _lease(s3, "runs/y/.lease", host="elsewhere", pid=1, started="1", token="t", expires=time.time() + 3600)
    with pytest.raises(CheckpointError, match=r"pid 1 on elsewhere.*lease runs \d+ s more"):
        run_dir_at(s3.url("runs/y")).open()
    _lease(s3, "runs/y/.lease", host="elsewhere", pid=1, started="1", token="t", expires=time.time() - 1)
    with run_dir_at(s3.url("runs/y")) as run_dir:
        assert run_dir.took_over is not None and "expired" in run_dir.took_over


def test_a_driver_whose_run_json_was_replaced_by_another_stops_before_overwriting_it(s3):
    from batchjudge.engine.objrundir import run_dir_at

    with run_dir_at(s3.url("runs/z")) as run_dir:
        run_dir.write_meta({"fingerprint": {}, "note": "mine"})
        s3.client.put_object(Bucket=s3.bucket, Key="runs/z/run.json", Body=b'{"fingerprint": {}, "note": "theirs"}')
        with pytest.raises(CheckpointError, match="run.json: changed by another driver"):
            run_dir.write_meta({"fingerprint": {}, "note": "mine again"})
    assert orjson.loads(s3.read("runs/z/run.json"))["note"] == "theirs"


def test_a_part_name_taken_by_another_writer_is_never_overwritten(s3):
    from batchjudge.core.schema import RESULT_SCHEMA
    from batchjudge.engine.objrundir import run_dir_at

    columns = {f.name: [None] for f in RESULT_SCHEMA} | {"row_id": ["a"], "status": ["ok"]}
    with run_dir_at(s3.url("runs/p")) as run_dir:
        run_dir.write_meta({"fingerprint": {}})
        run_dir.write_part(columns)
        s3.client.put_object(Bucket=s3.bucket, Key="runs/p/results/part-000001.parquet", Body=b"theirs")
        with pytest.raises(CheckpointError, match="part-000001.parquet: written by another driver"):
            run_dir.write_part(columns | {"row_id": ["b"]})
    assert s3.read("runs/p/results/part-000001.parquet") == b"theirs"


def test_inputs_in_object_storage_get_the_same_one_line_errors_as_local_files(s3, tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all, just text")
    s3.client.upload_file(str(tmp_path / "bad.parquet"), s3.bucket, "bad/x.parquet")
    with pytest.raises(InputError, match=rf"^s3://{s3.bucket}/bad/x.parquet: not a Parquet file"):
        open_source([s3.url("bad/x.parquet")])
    with pytest.raises(InputError, match=r"^s3://no-such-bucket-here/shards/: the bucket does not exist"):
        open_source(["s3://no-such-bucket-here/shards/"])
    with pytest.raises(InputError, match=rf"^s3://{s3.bucket}/nothing/\*\.parquet: no object matches"):
        open_source([s3.url("nothing/*.parquet")])
    from batchjudge.engine.objrundir import run_dir_at

    with pytest.raises(ConfigError, match=r"^s3://no-such-bucket-here/runs/x/.lease: the bucket does not exist"):
        run_dir_at("s3://no-such-bucket-here/runs/x").open()
    missing = batchjudge(*run_args("s3://no-such-bucket-here/shards/", str(tmp_path / "run")))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert SECRET_KEY not in missing.stderr


def test_a_glob_over_objects_reads_the_matching_shards_under_their_folder_names(s3, tmp_path):
    inputs = shards(s3, tmp_path)
    source = open_source([s3.url("shards/*.parquet")])
    local = open_source([tmp_path / "data"])
    assert [f.rel for f in source.files] == [f.rel for f in local.files]
    assert source.total == local.total == 600
    assert open_source([inputs]).total == 600


def test_storage_options_are_refused_when_malformed_or_unknown_without_showing_their_values(s3):
    from batchjudge.engine.stores import parse_storage_options, set_storage_options

    with pytest.raises(ConfigError, match="^--storage-option secret_access_key: expected KEY=VALUE"):
        parse_storage_options(["secret_access_key"])
    set_storage_options({"secret_acces_key": "hunter2-not-shown"})
    with pytest.raises(ConfigError, match="^--storage-option secret_acces_key: not an s3:// option") as caught:
        open_source([s3.url("shards/")])
    assert "hunter2" not in str(caught.value)


def test_a_store_that_refuses_or_cannot_be_reached_is_the_environment_exit_1_and_a_missing_bucket_exit_2():
    from batchjudge.engine.stores import store_error
    from batchjudge.cli._console import exit_code_for
    from batchjudge.errors import StorageError

    denied = store_error("s3://b/k", OSError("AWS Error ACCESS_DENIED during HeadObject operation: Forbidden"), "read")
    unreachable = store_error("s3://b/k", OSError("curlCode: 7, Could not connect to server"), "read")
    missing = store_error("s3://b/k", OSError("Bucket 'b' not found (NoSuchBucket)"), "read")
    assert isinstance(denied, StorageError) and "access denied" in str(denied) and exit_code_for(denied) == 1
    assert isinstance(unreachable, StorageError) and "unreachable" in str(unreachable)
    assert isinstance(missing, InputError) and exit_code_for(missing) == 2
    none = store_error("s3://b/k", OSError("Unable to locate credentials"), "read")
    assert isinstance(none, StorageError) and "no credentials found" in str(none)


def test_a_run_directory_in_object_storage_cannot_yet_be_in_gcs_or_azure_nor_hold_batch_jobs():
    from batchjudge.engine.config import RunConfig

    for option, message in (({"mode": "batch", "provider": "mistral"}, "--mode batch needs a local --out"),
                            ({"out": "gs://b/runs/r"}, "a run directory in gs:// or az:// is not supported yet")):
        with pytest.raises(ConfigError, match=message):
            RunConfig(**({"inputs": ["x.parquet"], "out": "s3://b/runs/r"} | option)).validate()  # type: ignore[arg-type]


def _columns(row_ids: list[str], status: str = "ok") -> dict[str, list[object]]:
    from batchjudge.core.schema import RESULT_SCHEMA

    return {f.name: [None] * len(row_ids) for f in RESULT_SCHEMA} | {"row_id": row_ids, "status": [status] * len(row_ids)}


def _three_parts(s3: S3Server, run: str) -> None:
    from batchjudge.engine.objrundir import run_dir_at

    with run_dir_at(s3.url(run)) as run_dir:
        run_dir.write_meta({"fingerprint": {}})
        run_dir.write_part(_columns(["a", "b"]))
        run_dir.write_part(_columns(["c"], "failed"))
        run_dir.write_part(_columns(["d"]) | {"status": ["failed"]})
        run_dir.write_meta({"fingerprint": {}})


def _stored_rows(s3: S3Server, run: str) -> list[str]:
    from batchjudge.engine.objrundir import run_dir_at

    with run_dir_at(s3.url(run)) as run_dir:
        return sorted(row for part in run_dir.verified_parts() for row in read_rows(part))


def read_rows(part: Any) -> list[str]:
    from batchjudge.engine.parts import read_part

    return list(read_part(part, ["row_id"]).column("row_id").to_pylist())


def test_retry_failed_in_object_storage_rewrites_the_parts_without_their_failed_rows(s3):
    from batchjudge.engine.objrundir import run_dir_at

    _three_parts(s3, "runs/d")
    with run_dir_at(s3.url("runs/d")) as run_dir:
        run_dir.read_meta()
        assert run_dir.drop_failed() == 2
    assert _stored_rows(s3, "runs/d") == ["a", "b"]
    meta = orjson.loads(s3.read("runs/d/run.json"))
    assert list(meta["parts"]) == ["part-000000.parquet"] and "parts_staged" not in meta and "parts_retired" not in meta
    assert [k.rsplit("/", 1)[-1] for k in s3.keys("runs/d/results/")] == ["part-000000.parquet"]


@pytest.mark.slow  # about 2 s each on a loaded machine: the run directory's S3 round trips
@pytest.mark.parametrize("interrupted", ["before the switch", "after the switch"])
def test_a_rewrite_interrupted_in_object_storage_leaves_one_whole_set(s3, interrupted):
    """A crash while ``--retry-failed`` rewrites the parts (the store refusing the next write
    stands for it) leaves the old rows before the switch and the new ones after it, never both."""
    from batchjudge.engine.objrundir import run_dir_at
    from batchjudge.errors import StorageError

    _three_parts(s3, "runs/e")
    with run_dir_at(s3.url("runs/e")) as run_dir:
        run_dir.write_part(_columns(["e"]) | {"status": ["failed"]})  # a part whose rewrite keeps rows: staged
        run_dir.write_part(_columns(["f", "g"]) | {"status": ["ok", "failed"]})
        run_dir.write_meta({"fingerprint": {}})
    puts = 0

    def crash(method: str, path: str, phase: str) -> bool:
        nonlocal puts
        if phase != "before":
            return False
        if interrupted == "before the switch" and method == "PUT" and path.endswith("/run.json"):
            puts += 1
            return puts >= 2  # the staging record lands, the switch never does
        return interrupted == "after the switch" and method == "DELETE" and "/results/" in path

    with run_dir_at(s3.url("runs/e")) as run_dir:
        run_dir.read_meta()
        s3.hook = crash
        with pytest.raises(StorageError):
            run_dir.drop_failed()
        s3.hook = None
    unsettled = orjson.loads(s3.read("runs/e/run.json"))
    assert len(s3.keys("runs/e/results/")) > len(unsettled["parts"])  # staged or retired parts are there
    expected = ["a", "b", "c", "d", "e", "f", "g"] if interrupted == "before the switch" else ["a", "b", "f"]
    look = read_status(s3.url("runs/e"))  # a look, before anything settles it
    assert look.done == len(expected) and look.last_write is not None
    assert _stored_rows(s3, "runs/e") == expected  # opened: settled
    meta = orjson.loads(s3.read("runs/e/run.json"))
    assert "parts_staged" not in meta and "parts_retired" not in meta
    assert len(s3.keys("runs/e/results/")) == len(meta["parts"])
