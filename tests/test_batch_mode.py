"""``batchjudge run --mode batch`` against the emulator: the same result parts as online mode,
chunks under the limits keyed by row, error answers kept, running jobs picked up on resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import polars as pl
import pytest
from emulator_fixtures import TEST_KEY, StartEmulator, emulator, sdk_over_http  # noqa: F401  (fixture)
from ft_fixtures import labelled_parquet

from batchjudge.api import run_async
from batchjudge.engine import batch
from batchjudge.engine.config import RunConfig
from batchjudge.engine.pipeline import RunResult
from batchjudge.errors import ConfigError
from batchjudge.report import load_run

_COMPARED = ["row_id", "status", "verdict", "reason", "prompt_tokens", "completion_tokens", "model", "target"]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "LIMITS", batch.BatchLimits(max_rows=7, poll_seconds=0.05))


def _config(data: Path, out: Path, url: str, **options: Any) -> RunConfig:
    options.setdefault("api_key", TEST_KEY)
    return RunConfig(inputs=[str(data)], out=str(out), provider="mistral", base_url=url, mode="batch",
                     flush_seconds=0.05, **options)


def _run(config: RunConfig) -> RunResult:
    return anyio.run(run_async, config)


def _submitted(out: Path) -> int:
    """Jobs the run directory records as created."""
    state = out / "batch" / "jobs.json"
    return sum(e["job_id"] is not None for e in orjson.loads(state.read_bytes())["jobs"]) if state.is_file() else 0


def _interrupt_once_submitted(config: RunConfig, jobs: int) -> None:
    """Run ``config`` and stop it (like Ctrl-C) once the run dir records ``jobs`` created jobs."""

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_async, config)
            with anyio.fail_after(30):
                while _submitted(Path(config.out)) < jobs:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    anyio.run(scenario)


def _results(out: Path) -> pl.DataFrame:
    return load_run(out).results.sort("row_id")


def test_a_batch_run_writes_the_same_results_as_an_online_run(emulator: StartEmulator, tmp_path: Path) -> None:
    server = emulator(queue_s=0.0)
    data = labelled_parquet(tmp_path / "d.parquet", 20, seed=51)
    batched = _run(_config(data, tmp_path / "batch", server.url))
    online = _run(RunConfig(inputs=[str(data)], out=str(tmp_path / "online"), provider="mistral",
                            base_url=server.url, api_key=TEST_KEY))
    assert batched.complete and batched.exit_code == 0 and batched.counts["ok"] == 20
    assert online.complete
    assert _results(tmp_path / "batch").select(_COMPARED).equals(_results(tmp_path / "online").select(_COMPARED))


def test_rows_are_chunked_under_the_limits_with_the_row_key_as_custom_id(emulator: StartEmulator, tmp_path: Path) -> None:
    server = emulator(queue_s=0.0)
    data = labelled_parquet(tmp_path / "d.parquet", 20, seed=52)
    _run(_config(data, tmp_path / "run", server.url))
    state = server.app.state.emulator
    sizes = sorted(job["total_requests"] for job in state.batch_jobs.values())
    assert sizes == [6, 7, 7]
    inputs = [state.files[f].content for job in state.batch_jobs.values() for f in job["input_files"]]
    custom_ids = {orjson.loads(line)["custom_id"] for content in inputs for line in content.splitlines()}
    assert custom_ids == set(_results(tmp_path / "run")["row_id"].to_list())
    record = orjson.loads((tmp_path / "run" / "batch" / "jobs.json").read_bytes())["jobs"]
    assert [(e["rows"], e["status"], e["collected"]) for e in record] == [(7, "SUCCESS", True), (7, "SUCCESS", True),
                                                                          (6, "SUCCESS", True)]
    assert sorted(p.name for p in (tmp_path / "run" / "batch").iterdir()) == ["jobs.json"]


def test_answers_from_the_error_file_become_failed_rows_with_the_apis_reason(emulator: StartEmulator, tmp_path: Path) -> None:
    server = emulator(queue_s=0.0)
    data = labelled_parquet(tmp_path / "d.parquet", 5, seed=53)
    result = _run(_config(data, tmp_path / "run", server.url, model="no-such-model"))
    assert result.complete and result.counts["failed"] == 5
    errors = _results(tmp_path / "run")["error"].to_list()
    assert all(e.startswith("BadRequestError: HTTP 4") and "no-such-model" in e for e in errors)


def test_a_resumed_run_follows_its_running_jobs_instead_of_resubmitting(emulator: StartEmulator, tmp_path: Path) -> None:
    server = emulator(queue_s=1.5)
    data = labelled_parquet(tmp_path / "d.parquet", 10, seed=54)
    _interrupt_once_submitted(_config(data, tmp_path / "run", server.url), jobs=2)
    state = server.app.state.emulator
    submitted = set(state.batch_jobs)
    assert len(submitted) == 2 and not load_run(tmp_path / "run").results.height
    resumed = _run(_config(data, tmp_path / "run", server.url))
    assert set(state.batch_jobs) == submitted
    assert resumed.complete and resumed.counts["ok"] == 10
    assert _results(tmp_path / "run")["row_id"].n_unique() == 10


def test_a_rejected_key_stops_the_run_with_exit_code_2(emulator: StartEmulator, tmp_path: Path) -> None:
    server = emulator(api_key="the-right-key")
    data = labelled_parquet(tmp_path / "d.parquet", 3, seed=55)
    result = _run(_config(data, tmp_path / "run", server.url))
    assert not result.complete and result.exit_code == 2 and "AuthError" in (result.error or "")


def test_batch_mode_needs_the_mistral_provider() -> None:
    with pytest.raises(ConfigError, match="--mode batch needs --provider mistral"):
        RunConfig(inputs=["x.parquet"], out="r", provider="local", mode="batch").validate()


def test_rows_of_a_job_cancelled_meanwhile_fail_and_retry_failed_sends_them_again(
    emulator: StartEmulator, tmp_path: Path
) -> None:
    server = emulator(queue_s=1.0)
    data = labelled_parquet(tmp_path / "d.parquet", 5, seed=56)
    _interrupt_once_submitted(_config(data, tmp_path / "run", server.url), jobs=1)
    (job_id,) = server.app.state.emulator.batch_jobs

    async def cancel() -> None:
        async with sdk_over_http(server.url) as sdk:  # closed, so no connection outlives the loop
            await sdk.batch.jobs.cancel_async(job_id=job_id)

    anyio.run(cancel)
    resumed = _run(_config(data, tmp_path / "run", server.url))
    assert resumed.complete and resumed.counts["failed"] == 5
    assert all("ended CANCELLED without an answer" in e for e in _results(tmp_path / "run")["error"].to_list())
    retried = _run(_config(data, tmp_path / "run", server.url, retry_failed=True))
    assert retried.complete and retried.counts == {"ok": 5, "parse_error": 0, "failed": 0, "done": 5, "total": 5}
    assert len(server.app.state.emulator.batch_jobs) == 2


def test_identical_requests_in_a_chunk_are_sent_once_and_answer_every_row(
    emulator: StartEmulator, tmp_path: Path
) -> None:
    server = emulator(queue_s=0.0)
    table = pl.read_parquet(labelled_parquet(tmp_path / "d.parquet", 5, seed=52))
    twins = pl.concat([table.head(1)] * 10 + [table]).drop("id").with_row_index("id").with_columns(pl.col("id").cast(pl.String))
    twins.write_parquet(tmp_path / "twins.parquet")
    result = _run(_config(tmp_path / "twins.parquet", tmp_path / "batch", server.url))
    assert result.complete and result.counts["ok"] == 15
    df = _results(tmp_path / "batch")
    # rows 0-10 are one pair; chunks of 7 rows: 7 of them (1 sent, 6 reused), then the other 4
    # (1 sent, 3 reused) and 3 others, then the last row
    assert result.stats["reused"] == 9 and df.filter(pl.col("attempts") == 0).height == 9
    assert df.filter(pl.col("attempts") == 0)["prompt_tokens"].sum() == 0
    first = df.filter(pl.col("row_id").is_in([str(i) for i in range(11)]))
    assert first["verdict"].n_unique() == 1 and first["reason"].n_unique() == 1
