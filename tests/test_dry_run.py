"""``run --dry-run``: rows, calls, exact prompt tokens, cost and time before anything is spent;
nothing sent, nothing written."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from emulator_fixtures import TEST_KEY, StartEmulator, emulator  # noqa: F401  (fixture)
from typer.testing import CliRunner

import batchjudge
from batchjudge import JudgeReply, JudgeRequest, MockProvider, RunConfig
from batchjudge.cli import app
from batchjudge.report.prices import load_prices

runner = CliRunner()


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"MISTRAL_API_KEY": TEST_KEY}, terminal_width=400)
    return result.exit_code, result.output


def _prompt_tokens(output: str) -> int:
    found = re.search(r"([\d,]+) prompt tokens \(exact", output)
    assert found, output
    return int(found.group(1).replace(",", ""))


def test_the_dry_run_counts_the_prompt_tokens_the_run_is_billed(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator()
    data = write_pairs(20)
    args = ("run", str(data), "--out", str(tmp_path / "run"), "--provider", "mistral", "--base-url", server.url)
    code, dry = _cli(*args, "--dry-run")
    assert code == 0, dry
    assert not (tmp_path / "run").exists()  # nothing written, not even the run directory
    assert server.stats()["requests"] == 0  # nothing sent
    code, output = _cli(*args, "--quiet")
    assert code == 0, output
    billed = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet")["prompt_tokens"].sum()
    assert _prompt_tokens(dry) == billed > 0


def test_a_resumed_run_counts_only_the_rows_left(write_pairs: Callable[..., Path], tmp_path: Path) -> None:
    data = write_pairs(20)
    base = ("run", str(data), "--out", str(tmp_path / "run"), "--quiet")
    assert _cli(*base, "--limit", "8")[0] == 0
    code, dry = _cli(*base, "--dry-run")
    assert code == 0 and "12 of 20 to judge; 8 already have results" in dry
    code, refused = _cli(*base, "--dry-run", "--model", "other-model")
    assert code == 2 and "model: 'local-judge' -> 'other-model'" in refused


def test_failed_rows_count_again_with_retry_failed(write_pairs: Callable[..., Path], tmp_path: Path) -> None:
    def half_fail(request: JudgeRequest) -> JudgeReply:
        if int(request.premise.split(":")[0].split()[-1]) % 2:
            raise batchjudge.BadRequestError("no", status=400)
        return JudgeReply('{"consistency": 1}')

    data, out, mock = write_pairs(10), tmp_path / "run", MockProvider(half_fail)
    batchjudge.run(RunConfig(inputs=[data], out=out), provider=mock)
    plain = batchjudge.dry_run(RunConfig(inputs=[data], out=out), provider=mock)
    retry = batchjudge.dry_run(RunConfig(inputs=[data], out=out, retry_failed=True), provider=mock)
    assert (plain.to_judge, retry.to_judge, retry.done, retry.requests) == (0, 5, 5, 5)


def test_calls_match_the_run_when_rows_repeat(write_pairs: Callable[..., Path], tmp_path: Path) -> None:
    pl.concat([pl.read_parquet(write_pairs(6))] * 3).write_parquet(tmp_path / "thrice.parquet")
    config = RunConfig(inputs=[tmp_path / "thrice.parquet"], out=tmp_path / "run")
    dry = batchjudge.dry_run(config)
    result = batchjudge.run(config)
    assert (dry.requests, dry.reused) == (6, 12) == (result.stats["finished"] - result.stats["reused"],
                                                       result.stats["reused"])  # fmt: skip


def test_batch_pricing_is_half_the_online_price_and_time_follows_the_limits(
    write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    config = RunConfig(inputs=[write_pairs(20)], out=tmp_path / "run", provider="mistral", rps=5, tpm=60_000)
    dry = batchjudge.dry_run(config)
    price = load_prices(None).price(dry.model)
    assert price is not None
    online = dry.cost(price.cost)
    batch = dry.cost(lambda p, c: price.cost(p, c, batch=True))
    assert batch == pytest.approx((online[0] / 2, online[1] / 2)) and online[0] < online[1]
    tokens = dry.prompt_tokens + 20 * 64
    assert dry.seconds == pytest.approx(max(20 / 5, tokens / 60_000 * 60))
    code, output = _cli("run", *map(str, config.inputs), "--out", str(tmp_path / "run"), "--provider", "mistral",
                        "--rps", "5", "--dry-run")  # fmt: skip
    assert code == 0 and "at least 4s at --rps 5" in output
    assert f"online ${online[0]:.4f}" in output and f"batch API ${batch[0]:.4f}" in output


def test_the_local_judge_costs_nothing_and_no_key_is_needed(write_pairs: Callable[..., Path], tmp_path: Path) -> None:
    code, output = _cli("run", str(write_pairs(4)), "--out", str(tmp_path / "run"), "--dry-run")
    assert code == 0 and "cost    none (local judge)" in output and not (tmp_path / "run").exists()
