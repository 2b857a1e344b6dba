"""Identical requests are sent once per run; every input row still gets its own result row."""

from __future__ import annotations

from pathlib import Path

import anyio
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from batchjudge import BadRequestError, JudgeReply, JudgeRequest, MockProvider, RunConfig, run
from batchjudge.cli import app
from batchjudge.engine.dedupe import Dedupe, KeyWindow, request_key

DOC = "The council approved 40 new homes in Leeds on Monday."


def _data(path: Path, copies: int = 10, distinct: int = 5) -> Path:
    """``copies`` identical rows (own ids, same texts) then ``distinct`` different ones."""
    premises = [DOC] * copies + [f"Report {i}: the council approved {i} homes." for i in range(distinct)]
    hypotheses = ["The council approved 40 new homes."] * copies + [f"{i} homes." for i in range(distinct)]
    ids = [f"row-{i}" for i in range(copies + distinct)]
    pq.write_table(pa.table({"id": ids, "premise": premises, "hypothesis": hypotheses}), path)
    return path


def ok(request: JudgeRequest) -> JudgeReply:
    return JudgeReply('{"consistency": 1, "reason": "fine"}', prompt_tokens=30, completion_tokens=5)


def _results(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "results" / "*.parquet").sort("row_id")


def test_ten_identical_rows_make_one_call_and_ten_result_rows(tmp_path: Path) -> None:
    mock = MockProvider(ok)
    result = run(RunConfig(inputs=[_data(tmp_path / "d.parquet")], out=tmp_path / "run"), provider=mock)
    assert len(mock.calls) == 6 and result.stats["reused"] == 9
    df = _results(tmp_path / "run")
    assert df.height == 15 and df["status"].to_list() == ["ok"] * 15
    reused = df.filter(pl.col("attempts") == 0)
    assert reused.height == 9  # no call of their own: no tokens billed for them
    assert reused["prompt_tokens"].sum() == 0 and reused["completion_tokens"].sum() == 0
    assert set(reused["raw_response"]) == {ok(mock.calls[0]).text}
    assert result.stats["prompt_tokens"] == 6 * 30


def test_no_dedupe_sends_every_row(tmp_path: Path) -> None:
    mock = MockProvider(ok)
    run(RunConfig(inputs=[_data(tmp_path / "d.parquet")], out=tmp_path / "run", dedupe=False), provider=mock)
    assert len(mock.calls) == 15


def test_samples_at_a_temperature_without_a_seed_are_draws_not_duplicates(tmp_path: Path) -> None:
    mock = MockProvider(ok)
    config = RunConfig(inputs=[_data(tmp_path / "d.parquet")], out=tmp_path / "run", temperature=0.7)
    run(config, provider=mock)
    assert len(mock.calls) == 15
    seeded = MockProvider(ok)
    run(RunConfig(inputs=[_data(tmp_path / "d.parquet")], out=tmp_path / "seeded", temperature=0.7, seed=3),
        provider=seeded)  # fmt: skip
    assert len(seeded.calls) == 6


def test_duplicates_in_flight_wait_for_the_first_answer(tmp_path: Path) -> None:
    async def slow(request: JudgeRequest) -> JudgeReply:
        await anyio.sleep(0.05)
        return ok(request)

    mock = MockProvider(slow)
    result = run(RunConfig(inputs=[_data(tmp_path / "d.parquet", copies=20, distinct=0)], out=tmp_path / "run",
                           concurrency=16), provider=mock)  # fmt: skip
    assert len(mock.calls) == 1 and result.counts["ok"] == 20


def test_a_failed_call_is_not_shared_its_duplicates_try_on_their_own(tmp_path: Path) -> None:
    calls = 0

    def first_fails(request: JudgeRequest) -> JudgeReply:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise BadRequestError("no", status=400)
        return ok(request)

    result = run(RunConfig(inputs=[_data(tmp_path / "d.parquet", copies=4, distinct=0)], out=tmp_path / "run",
                           concurrency=1), provider=MockProvider(first_fails))  # fmt: skip
    assert calls == 2 and result.counts["failed"] == 1 and result.counts["ok"] == 3


def test_the_local_judge_dedupes_too_and_the_cli_summary_counts_it(tmp_path: Path) -> None:
    data = _data(tmp_path / "d.parquet")
    done = CliRunner().invoke(app, ["run", str(data), "--out", str(tmp_path / "run"), "--quiet"], terminal_width=300)
    assert done.exit_code == 0, done.output
    assert "9 rows reused an identical request's answer" in done.output
    assert _results(tmp_path / "run").filter(pl.col("attempts") == 0).height == 9


def _request(text: str, temperature: float = 0.0, seed: int | None = None) -> JudgeRequest:
    return JudgeRequest("r", [{"role": "user", "content": text}], "p", "h", "m",
                        temperature=temperature, seed=seed)  # fmt: skip


def test_the_key_covers_everything_sent_and_only_deterministic_requests() -> None:
    assert request_key(_request("a")) == request_key(_request("a"))
    assert request_key(_request("a")) != request_key(_request("b"))
    assert request_key(_request("a", seed=1)) != request_key(_request("a", seed=2))
    assert request_key(_request("a", temperature=0.5)) is None
    assert request_key(_request("a", temperature=0.5, seed=1)) is not None


def test_the_memory_is_a_bounded_window_of_recent_answers() -> None:
    window = KeyWindow(size=2)
    assert [window.seen(k) for k in (1, 2, 1, 3, 1, 2)] == [False, False, True, False, True, False]  # 2 was least recent

    async def scenario() -> list[bool]:
        dedupe = Dedupe(size=2)
        seen = []
        for key in (1, 2, 3, 1):
            answer = await dedupe.claim(key)
            seen.append(answer is not None)
            if answer is None:
                dedupe.settle(key, [JudgeReply("x")])
        return seen

    assert anyio.run(scenario) == [False, False, False, False]  # 1 was pushed out by 2 and 3


@pytest.mark.parametrize("copies", [1, 3])
def test_every_input_row_keeps_one_result_row(tmp_path: Path, copies: int) -> None:
    run(RunConfig(inputs=[_data(tmp_path / "d.parquet", copies=copies)], out=tmp_path / "run"),
        provider=MockProvider(ok))  # fmt: skip
    assert _results(tmp_path / "run")["row_id"].to_list() == sorted(f"row-{i}" for i in range(copies + 5))
