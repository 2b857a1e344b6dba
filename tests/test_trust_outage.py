"""Outages are not row failures, waits and replies are bounded.

While no request of the run has succeeded, an unreachable endpoint stops the run within about
30 s (exit 1, one line naming the URL and the cause, no row marked failed). After successes, an
outage opens the circuit breaker: one probe at a time with backoff, sending resumes when the
endpoint is back, and no row fails or burns a retry for it. A ``Retry-After`` longer than
``--max-retry-after`` is an outage too; a reply over the size cap fails its row, unread.

The engine-level tests run on virtual time (a 30-second outage costs milliseconds); the
end-to-end ones use a real server that stops listening, over real HTTP.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import anyio
import polars as pl
import pytest
from aiohttp import web

from batchjudge import JudgeReply, JudgeRequest, MockProvider, RateLimitError, RunConfig, run
from batchjudge.errors import DisconnectedError, UnreachableError
from emulator_fixtures import batchjudge_cli, emulator  # noqa: F401 - a fixture
from hostile_server import HostileServer, chat_reply, dead_url, wait_for
from virtual_time import run_engine_virtual

OK = JudgeReply('{"consistency": 1}')
URL = "http://judge.example:8000"


def _config(data: Path, out: Path, **options: object) -> RunConfig:
    settings: dict[str, object] = dict(concurrency=16, max_retries=2, backoff_base=0.01, backoff_cap=0.05)
    settings.update(options)
    return RunConfig(inputs=[data], out=out, **settings)  # type: ignore[arg-type]


def _refused() -> UnreachableError:
    return UnreachableError(f"chat completion: cannot connect to {URL} (Connection refused)", url=URL)


def test_a_dead_endpoint_stops_the_run_in_30_seconds_and_fails_no_row(write_pairs, tmp_path: Path) -> None:
    calls: list[float] = []

    async def dead(request: JudgeRequest) -> JudgeReply:
        calls.append(anyio.current_time())
        raise _refused()

    result = run_engine_virtual(_config(write_pairs(1000), tmp_path / "run"), provider=MockProvider(dead))
    assert result.exit_code == 1 and not result.complete
    assert isinstance(result.stopped_by, UnreachableError)
    assert result.error is not None and result.error.startswith(
        f"UnreachableError: chat completion: cannot connect to {URL} (Connection refused); "
        "no request of this run has succeeded in 30 s"
    )
    assert 29.0 <= calls[-1] - calls[0] <= 31.0
    assert len(calls) <= 16 + 6  # the first wave, then one probe at a time: not 1,000 rows x retries
    assert result.counts["failed"] == 0 and result.counts["done"] == 0


def test_an_outage_after_successes_pauses_probes_one_at_a_time_and_fails_no_row(
    write_pairs, tmp_path: Path
) -> None:
    """The endpoint is down from t=1 s to t=20 s (virtual). With max_retries=0 a single burnt
    retry would fail a row: none does, and while it is down only lone probes go out."""
    state = {"start": None, "in_flight": 0, "most_in_outage": 0, "outage_calls": 0}

    async def flaky(request: JudgeRequest) -> JudgeReply:
        now = anyio.current_time()
        start = state["start"] = state["start"] if state["start"] is not None else now
        if 1.0 <= now - start < 20.0:
            state["outage_calls"] += 1
            state["in_flight"] += 1
            state["most_in_outage"] = max(state["most_in_outage"], state["in_flight"])
            await anyio.sleep(0.01)
            state["in_flight"] -= 1
            raise _refused()
        await anyio.sleep(0.05)
        return OK

    result = run_engine_virtual(_config(write_pairs(2000), tmp_path / "run", max_retries=0),
                                provider=MockProvider(flaky))
    assert result.complete and result.exit_code == 0
    assert result.counts["failed"] == 0 and result.counts["ok"] == 2000
    assert result.stats["outages"] == 1
    assert state["outage_calls"] <= 16 + 6 and state["most_in_outage"] <= 16


def test_a_lone_lost_connection_is_retried_but_a_run_of_them_is_an_outage(write_pairs, tmp_path: Path) -> None:
    """One connection reset is the row's transient failure (one retry, no pause); resets on
    every connection from t=2 s to t=10 s (virtual) are an outage: with max_retries=1 no row
    fails, though each reset before the third in a row cost its row a retry."""
    state = {"start": None, "n": 0}

    async def resetting(request: JudgeRequest) -> JudgeReply:
        now = anyio.current_time()
        start = state["start"] = state["start"] if state["start"] is not None else now
        state["n"] += 1
        if state["n"] == 5 or 2.0 <= now - start < 10.0:
            raise DisconnectedError("chat completion: connection lost before any reply: Connection reset by peer")
        await anyio.sleep(0.05)
        return OK

    result = run_engine_virtual(_config(write_pairs(1500), tmp_path / "run", max_retries=1),
                                provider=MockProvider(resetting))
    failed = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet").filter(pl.col("status") == "failed")
    assert result.complete and result.counts["failed"] == 0, failed.select("error", "attempts").to_dicts()
    # a request sent just before t=2 s and answered after it may close the breaker once more
    assert 1 <= result.stats["outages"] <= 2 and result.stats["retries"] <= 1 + 2 * 2 + 16


def test_a_retry_after_beyond_the_ceiling_is_an_outage_not_a_day_long_wait(write_pairs, tmp_path: Path) -> None:
    calls: list[float] = []

    def busy_for_a_day(request: JudgeRequest) -> JudgeReply:
        calls.append(anyio.current_time())
        if 5 <= len(calls) < 9:
            raise RateLimitError("HTTP 429 from the Mistral API: come back tomorrow", retry_after=86400.0)
        return OK

    result = run_engine_virtual(_config(write_pairs(40), tmp_path / "run", concurrency=1),
                                provider=MockProvider(busy_for_a_day))
    assert result.complete and result.counts["failed"] == 0 and result.stats["outages"] == 1
    assert calls[-1] - calls[0] < 30  # probes after 1, 2, 4 s of virtual time: not a day


def test_a_retry_after_beyond_the_ceiling_before_any_success_stops_the_run_saying_so(
    write_pairs, tmp_path: Path
) -> None:
    def closed(request: JudgeRequest) -> JudgeReply:
        raise RateLimitError("HTTP 429 from the Mistral API: closed", retry_after=86400.0)

    result = run_engine_virtual(_config(write_pairs(20), tmp_path / "run", max_retry_after=60),
                                provider=MockProvider(closed))
    assert result.exit_code == 1 and result.counts["failed"] == 0
    assert result.error is not None and "the server asked to wait 86,400 s (Retry-After), more than " \
        "--max-retry-after 60 s; no request of this run has succeeded in 30 s" in result.error


def test_an_endpoint_that_refuses_connections_mid_run_costs_no_row(write_pairs, tmp_path: Path) -> None:
    """Real HTTP: the server stops listening (connections refused, open ones closed) for 2 s
    after 60 answers; the run waits, says so, resumes, and ends with every row ok."""
    data = write_pairs(300)
    with HostileServer(latency=0.01) as server:
        proc = _start_cli(data, tmp_path / "run", server.url)
        assert wait_for(lambda: server.answered >= 60, timeout=60)
        server.outage(2.0)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    said = " ".join(err.split())  # the log handler wraps lines at the terminal's width
    assert "sending paused, probing the endpoint until it answers" in said
    assert re.search(r"the endpoint answers again after \d+ s; sending resumed", said)
    results = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet")
    assert results.height == 300 and results["status"].to_list() == ["ok"] * 300


@pytest.mark.parametrize("transport", ["http", pytest.param("sdk", marks=pytest.mark.slow)])
def test_the_emulators_outage_mode_costs_no_row(write_pairs, tmp_path: Path, emulator, transport: str) -> None:  # noqa: F811
    """The emulator resets every connection for 0.8 s, 0.2 s after the first request (a reset
    after the handshake, as a load balancer with no backend does): the resets are an outage
    once three come in a row, so with max_retries=1 no row fails."""
    server = emulator(outage=(0.2, 0.8), latency_ms=20)
    result = run(RunConfig(inputs=[write_pairs(300)], out=tmp_path / "run", provider="mistral",
                           api_key="sk-test-outage-key", base_url=server.url, transport=transport,
                           concurrency=8, max_retries=1, check_labels=False))
    stats = server.stats()
    assert stats["outage"]["resets"] > 0  # the outage really happened mid-run
    assert result.complete and result.counts["ok"] == 300 and result.counts["failed"] == 0
    assert result.stats["outages"] >= 1


def _start_cli(data: Path, out: Path, url: str, *extra: str):  # type: ignore[no-untyped-def]
    import os
    import subprocess

    from emulator_fixtures import cli_command

    env = {**os.environ, "MISTRAL_API_KEY": "sk-test-outage-key", "WEAVE_DISABLED": "true"}
    return subprocess.Popen(
        [*cli_command(), "run", str(data), "--out", str(out), "--provider", "mistral", "--base-url", url,
         "--concurrency", "8", "--max-retries", "1", "--quiet", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.slow
def test_a_dead_base_url_on_a_thousand_rows_exits_non_zero_within_30_seconds(write_pairs, tmp_path: Path) -> None:
    url = dead_url()
    started = time.monotonic()
    proc = batchjudge_cli("run", str(write_pairs(1000)), "--out", str(tmp_path / "run"), "--provider", "mistral",
                          "--base-url", url, "--quiet", env={"MISTRAL_API_KEY": "sk-test-dead-key"}, timeout=90)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert f"cannot connect to {url} (Connection refused)" in proc.stderr
    assert elapsed < 40  # 30 s of outage, plus start-up and the input check on a busy machine
    assert not list((tmp_path / "run" / "results").glob("*.parquet"))  # no row recorded, failed or not


@pytest.mark.parametrize("transport", ["http", "sdk"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_reply_over_the_cap_fails_its_row_with_a_clear_reason(
    write_pairs, tmp_path: Path, transport: str, declared: bool
) -> None:
    huge = chat_reply().text[:-1] + ', "padding": "' + "x" * (10 * 1024 * 1024) + '"}'

    async def ten_megabytes(request: web.Request) -> web.StreamResponse:
        if declared:
            return web.Response(text=huge, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(huge), 65536):
            await response.write(huge[start:start + 65536].encode())
        await response.write_eof()
        return response

    with HostileServer(lambda request, n: ten_megabytes(request)) as server:
        result = run(RunConfig(inputs=[write_pairs(3)], out=tmp_path / "run", provider="mistral",
                               api_key="sk-test-huge-key", base_url=server.url, transport=transport,
                               max_retries=0))
    errors = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet")["error"].to_list()
    assert result.complete and result.counts["failed"] == 3
    assert all(e.startswith("ReplyTooLargeError: chat completion: reply") and "1,048,576-byte cap" in e
               for e in errors)
