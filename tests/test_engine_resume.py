"""Checkpointing and resume: done rows are never sent again; changed settings are refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from batchjudge import CheckpointError, ConfigError, InputError, JudgeReply, JudgeRequest, MockProvider, RunConfig, TransientError, run
from batchjudge.engine.checkpoint import RunDir


def ok(request: JudgeRequest) -> JudgeReply:
    return JudgeReply('{"consistency": 1, "reason": "ok"}', prompt_tokens=3, completion_tokens=2)


def results(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "results" / "*.parquet")


def test_the_same_run_again_sends_no_done_row(write_pairs, tmp_path):
    path = write_pairs(30)
    first = MockProvider(ok)
    run(RunConfig(inputs=[path], out=tmp_path / "run", flush_rows=7), provider=first)
    again = MockProvider(ok)
    result = run(RunConfig(inputs=[path], out=tmp_path / "run", flush_rows=7), provider=again)
    assert len(first.calls) == 30 and again.calls == []
    assert result.complete and result.counts == {"ok": 30, "parse_error": 0, "failed": 0, "done": 30, "total": 30}
    assert results(tmp_path / "run")["row_id"].n_unique() == 30


def test_results_are_flushed_in_parts_every_k_rows(write_pairs, tmp_path):
    run(RunConfig(inputs=[write_pairs(25)], out=tmp_path / "run", flush_rows=10), provider=MockProvider(ok))
    assert len(list((tmp_path / "run" / "results").glob("part-*.parquet"))) == 3


def test_a_limit_then_a_larger_limit_judges_only_the_new_rows(write_pairs, tmp_path):
    path = write_pairs(20)
    run(RunConfig(inputs=[path], out=tmp_path / "run", limit=8), provider=MockProvider(ok))
    second = MockProvider(ok)
    result = run(RunConfig(inputs=[path], out=tmp_path / "run", limit=20), provider=second)
    assert len(second.calls) == 12 and result.complete
    assert results(tmp_path / "run").height == 20


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model": "other-model"}, "model: 'mock' -> 'other-model'"),
        ({"prompt": "ft"}, "spec 'zero-shot' -> 'ft'"),
        ({"temperature": 0.5}, "generation parameters: temperature 0.0 -> 0.5"),
    ],
)
def test_resuming_with_changed_settings_is_refused_naming_what_changed(write_pairs, tmp_path, change, named):
    path = write_pairs(5)
    run(RunConfig(inputs=[path], out=tmp_path / "run"), provider=MockProvider(ok))
    with pytest.raises(ConfigError) as exc:
        run(RunConfig(inputs=[path], out=tmp_path / "run", **change), provider=MockProvider(ok))
    assert named in str(exc.value)


def test_resuming_on_a_changed_dataset_is_refused(write_pairs, tmp_path):
    path = write_pairs(5)
    run(RunConfig(inputs=[path], out=tmp_path / "run"), provider=MockProvider(ok))
    write_pairs(9)  # same file name, other content
    with pytest.raises(InputError, match="pairs.parquet changed since the run read it"):
        run(RunConfig(inputs=[path], out=tmp_path / "run"), provider=MockProvider(ok))
    other = write_pairs(5, name="other.parquet")  # other files
    with pytest.raises(ConfigError, match="dataset"):
        run(RunConfig(inputs=[other], out=tmp_path / "run"), provider=MockProvider(ok))


def test_overwrite_starts_a_changed_run_afresh(write_pairs, tmp_path):
    path = write_pairs(5)
    run(RunConfig(inputs=[path], out=tmp_path / "run"), provider=MockProvider(ok))
    again = MockProvider(ok)
    run(RunConfig(inputs=[path], out=tmp_path / "run", model="m2", overwrite=True), provider=again)
    assert len(again.calls) == 5
    assert results(tmp_path / "run")["model"].unique().to_list() == ["m2"]


def test_retry_failed_resends_only_the_failed_rows_and_keeps_one_result_each(write_pairs, tmp_path):
    path = write_pairs(10)

    def flaky(request: JudgeRequest) -> JudgeReply:
        if int(request.premise.split(":")[0].split()[-1]) % 3 == 0:
            raise TransientError("down", status=503)
        return ok(request)

    run(RunConfig(inputs=[path], out=tmp_path / "run", max_retries=0), provider=MockProvider(flaky))
    assert results(tmp_path / "run").filter(pl.col("status") == "failed").height == 4
    plain = MockProvider(ok)
    run(RunConfig(inputs=[path], out=tmp_path / "run", max_retries=0), provider=plain)
    assert plain.calls == []  # failed is final unless asked
    retry = MockProvider(ok)
    result = run(RunConfig(inputs=[path], out=tmp_path / "run", max_retries=0, retry_failed=True), provider=retry)
    df = results(tmp_path / "run")
    assert len(retry.calls) == 4
    assert df.height == 10 and df["row_id"].n_unique() == 10
    assert result.counts == {"ok": 10, "parse_error": 0, "failed": 0, "done": 10, "total": 10}


def test_run_json_holds_config_fingerprint_counts_and_never_the_key(write_pairs, tmp_path):
    run(RunConfig(inputs=[write_pairs(4)], out=tmp_path / "run", api_key="sk-SECRET-123"), provider=MockProvider(ok))
    text = (tmp_path / "run" / "run.json").read_text()
    meta = json.loads(text)
    assert "sk-SECRET-123" not in text
    assert meta["counts"]["done"] == 4 and meta["counts"]["total"] == 4
    assert {"provider", "model", "prompt", "dataset", "generation"} <= set(meta["fingerprint"])


def test_a_locked_run_directory_is_refused(write_pairs, tmp_path):
    with RunDir(tmp_path / "run"):
        with pytest.raises(CheckpointError, match="another batchjudge run"):
            run(RunConfig(inputs=[write_pairs(2)], out=tmp_path / "run"), provider=MockProvider(ok))


def test_an_interrupted_compaction_is_recovered_on_open(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "results.new").mkdir(parents=True)
    (run_dir / "results.new" / "part-000000.parquet").write_bytes(b"x")
    with RunDir(run_dir) as rd:  # crash between the two renames: the staged set becomes the results
        assert [p.name for p in rd.parts()] == ["part-000000.parquet"]
    os.replace(run_dir / "results", run_dir / "results.new")
    (run_dir / "results").mkdir()
    with RunDir(run_dir) as rd:  # crash while staging: the old results stand, the stage is dropped
        assert rd.parts() == [] and not (run_dir / "results.new").exists()
