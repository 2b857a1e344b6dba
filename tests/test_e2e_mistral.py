"""``batchjudge run --provider mistral`` end to end: the CLI in a subprocess, the emulator
over real HTTP, every failure the hosted API can throw at a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from emulator_fixtures import TEST_KEY, StartEmulator, batchjudge_cli, emulator  # noqa: F401  (fixture)

from batchjudge.emulator import EmulatorServer
from batchjudge.localjudge import LocalJudge

ROWS = 30


def _run(
    server: EmulatorServer, data: Path, out: Path, *extra: str, key: str | None = TEST_KEY
) -> Any:
    env = {"MISTRAL_API_KEY": key} if key is not None else {"MISTRAL_API_KEY": ""}
    return batchjudge_cli(
        "run",
        str(data),
        "--out",
        str(out),
        "--provider",
        "mistral",
        "--base-url",
        server.url,
        "--model",
        "open-mistral-7b",
        "--quiet",
        "--flush-seconds",
        "0.5",
        *extra,
        env=env,
    )


def _results(out: Path) -> pl.DataFrame:
    files = sorted((out / "results").glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def _expected_verdicts(data: Path) -> list[int]:
    table = pl.read_parquet(data)
    judge = LocalJudge.load("local-judge")
    return [judge.predict(p, h).verdict for p, h in zip(table["premise"], table["hypothesis"])]


def test_a_clean_run_judges_every_row_alike_on_both_transports(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator(latency_ms=10, jitter_ms=5)
    data = write_pairs(ROWS)
    for transport in ("http", "sdk"):
        done = _run(server, data, tmp_path / transport, "--transport", transport, "--rps", "200")
        assert done.returncode == 0, done.stderr
    http, sdk = (_results(tmp_path / t).sort("row_id") for t in ("http", "sdk"))
    assert http.height == ROWS and (http["status"] == "ok").all()
    assert sorted(http["verdict"].to_list()) == sorted(_expected_verdicts(data))
    assert (http["prompt_tokens"] > 0).all() and (http["completion_tokens"] > 0).all()
    columns = ["row_id", "status", "verdict", "raw_response", "prompt_tokens", "completion_tokens"]
    assert http.select(columns).equals(sdk.select(columns))
    assert server.stats()["chat_completions"] == 2 * ROWS


def test_a_429_storm_is_ridden_out_without_breaking_retry_after(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator(rps=10, latency_ms=20)
    data = write_pairs(ROWS)
    done = _run(
        server, data, tmp_path / "run", "--rps", "100", "--concurrency", "16", "--max-retries", "20"
    )
    assert done.returncode == 0, done.stderr
    assert (_results(tmp_path / "run")["status"] == "ok").all()
    stats = server.stats()
    assert stats["rate_limited"] > 0
    assert stats["retry_after_violations"] == 0


def test_transient_faults_are_retried_until_every_row_is_ok(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    faults = "500:0.1,503:0.05,slow:0.05,malformed:0.05,nonjson:0.05,drop:0.05"
    server = emulator(faults=faults, seed=1, slow_s=5.0)
    data = write_pairs(ROWS)
    done = _run(server, data, tmp_path / "run", "--timeout", "1", "--max-retries", "10")
    assert done.returncode == 0, done.stderr
    results = _results(tmp_path / "run")
    assert results.height == ROWS and (results["status"] == "ok").all()
    injected = server.stats()["faults"]
    assert set(injected) >= {"500", "slow", "malformed", "drop"}, injected
    # the faults were retried: each cost its row one more attempt, unless the breaker took it
    # for an outage of the endpoint (before the first success, or five in a row), which costs
    # no row anything
    assert results["attempts"].sum() > ROWS
    assert sorted(results["verdict"].to_list()) == sorted(_expected_verdicts(data))


def test_a_400_fails_the_row_at_once_without_a_retry(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    # Half the rows refused, one request at a time (a seeded, fixed order): rows are answered
    # among the first ones, so these 400s are the rows' own (every row refused alike is the
    # request's error and stops the run: test_request_errors.py).
    server = emulator(faults="400:0.5", seed=1)
    done = _run(server, write_pairs(ROWS), tmp_path / "run", "--concurrency", "1")
    assert done.returncode == 0, done.stderr  # every row has its final result
    results = _results(tmp_path / "run")
    failed = results.filter(pl.col("status") == "failed")
    assert failed.height > 0 and (failed["attempts"] == 1).all()
    assert failed["error"].str.contains("HTTP 400").all()
    assert server.stats()["chat_completions"] == ROWS


def test_a_rejected_key_stops_the_run_with_one_clear_error_and_nothing_done(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator(api_key="the-right-key")
    done = _run(
        server, write_pairs(ROWS), tmp_path / "run", "--concurrency", "4", key="sk-wrong-key-abc"
    )
    assert done.returncode != 0
    assert "MISTRAL_API_KEY" in done.stderr and "401" in done.stderr
    assert "sk-wrong-key-abc" not in done.stderr + done.stdout
    assert _results(tmp_path / "run").height == 0
    assert server.stats()["requests"] <= 4  # the run stopped at the first 401s in flight


def test_a_missing_key_is_refused_before_anything_is_sent(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator()
    done = _run(server, write_pairs(ROWS), tmp_path / "run", key=None)
    assert done.returncode == 2
    assert "MISTRAL_API_KEY" in done.stderr
    assert server.stats()["requests"] == 0
