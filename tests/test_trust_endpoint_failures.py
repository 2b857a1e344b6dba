"""An endpoint that answers nothing useful is an outage, every wait is bounded, and every
option error is one line with exit 2.

A server that hangs, answers 5xx or speaks garbage is treated like one that refuses
connections (engine/breaker.py states the rule): before any success the first such failure
opens the breaker, and 30 s of them (dated from the first failed request's send) stop the run
with exit 1, one line saying what the endpoint did, and no row marked failed; after successes,
five in a row with no answer in between open it, so a stretch of them costs no row, while a
healthy server's random 500s never do. A rate limit the server announces (or shows by its 429s)
below ``--min-rps`` stops the run with the server's figure instead of crawling for hours.

The rule and the engine run on virtual time here (a 40-second stretch costs milliseconds); the
real-HTTP tests against a scripted server are the slow ones, apart from the tiny announced
limit, which stops at the first reply.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import polars as pl
import pytest
from aiohttp import web
from typer.testing import CliRunner

from batchjudge import JudgeReply, JudgeRequest, MockProvider, RateLimitError, RunConfig, TransientError, run
from batchjudge.cli import app
from batchjudge.engine.breaker import Breaker
from batchjudge.errors import UnreachableError
from emulator_fixtures import batchjudge_cli
from hostile_server import HostileServer, chat_reply
from virtual_time import run_engine_virtual, run_virtual

OK = JudgeReply('{"consistency": 1}', prompt_tokens=10, completion_tokens=5)
KEY = "sk-test-endpoint-failures"


class Clock:
    """A clock the test sets by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the breaker's rule, with plain data ----------------------------------------------------
def test_before_any_success_the_first_failure_of_the_endpoint_is_an_outage() -> None:
    assert Breaker(clock=Clock()).record_failure(0.0)


def test_after_successes_a_lone_failure_is_the_rows_and_the_fifth_in_a_row_opens_the_breaker() -> None:
    breaker = Breaker(clock=Clock())
    breaker.record_success(None, 0.0)
    assert [breaker.record_failure(float(sent)) for sent in range(1, 6)] == [False, False, False, False, True]


def test_only_an_answer_to_a_request_sent_after_the_streak_began_ends_it() -> None:
    breaker = Breaker(clock=Clock())
    breaker.record_success(None, 0.0)
    assert not breaker.record_failure(10.0) and not breaker.record_failure(11.0)
    breaker.record_success(None, 9.0)  # sent before the first failure: says nothing about it
    breaker.record_answer(None, 9.5)  # a 4xx to an earlier request: neither
    assert not breaker.record_failure(12.0) and not breaker.record_failure(13.0)
    assert breaker.record_failure(14.0)  # the fifth in a row
    fresh = Breaker(clock=Clock())
    fresh.record_success(None, 0.0)
    for sent in (10.0, 11.0, 12.0, 13.0):
        fresh.record_failure(sent)
    fresh.record_answer(None, 12.5)  # a 4xx or 429 to a later request: the server is there
    assert not any(fresh.record_failure(sent) for sent in (14.0, 15.0, 16.0, 17.0))


def test_three_lost_connections_in_a_row_open_it_as_before() -> None:
    breaker = Breaker(clock=Clock())
    breaker.record_success(None, 0.0)
    assert [breaker.record_failure(float(s), disconnected=True) for s in (1, 2, 3)] == [False, False, True]


def test_before_any_success_the_outage_counts_from_the_first_failed_send_and_stops_after_30_s() -> None:
    clock = Clock()
    breaker = Breaker(clock=clock)
    clock.now = 3.0  # a request sent at 0 timed out after 3 s
    assert breaker.record_failure(0.0)
    assert not breaker.record_outage(None, "hung", sent_at=0.0) and breaker.open_since == 0.0
    clock.now = 29.9
    assert not breaker.record_outage(None, "hung", sent_at=26.9)
    clock.now = 30.0
    assert breaker.record_outage(None, "hung", sent_at=27.0)


def test_the_senders_waiting_at_an_open_breaker_take_turns_at_probing() -> None:
    """A row whose own request always fails must not be the only probe (it would pass for a
    dead endpoint): after a failed probe the next sender in line probes."""

    async def main() -> list[str]:
        breaker = Breaker(clock=anyio.current_time, sleep=anyio.sleep)
        breaker.record_outage(None, "down", sent_at=0.0)
        probes: list[str] = []

        async def sender(name: str) -> None:
            for _ in range(2):
                ticket = await breaker.admit()
                probes.append(name)
                breaker.record_outage(ticket, "down")  # the probe failed: back in line

        async with anyio.create_task_group() as group:
            for name in "abc":
                group.start_soon(sender, name)
        return probes

    probes = run_virtual(main)
    assert sorted(probes[:3]) == ["a", "b", "c"] and probes[3:] == probes[:3]  # in turn, as they came


# -- the engine on virtual time --------------------------------------------------------------
def _config(data: Path, out: Path, **options: object) -> RunConfig:
    settings: dict[str, object] = dict(concurrency=16, backoff_base=0.01, backoff_cap=0.05, timeout=3.0)
    settings.update(options)
    return RunConfig(inputs=[data], out=out, **settings)  # type: ignore[arg-type]


async def _fail(kind: str) -> JudgeReply:
    """What a failing endpoint does to one request, as the transports report it (a reply,
    even a bad one, takes a round trip)."""
    await anyio.sleep(3600 if kind == "hang" else 0.05)
    if kind == "500":
        raise TransientError("HTTP 500 from Mistral API: Internal Server Error", status=500)
    raise TransientError("chat completion: malformed HTTP reply (Expected HTTP/, RTSP/ or ICE/)")


SAID = {
    "hang": "the endpoint sent no reply within 3 s (every request timed out)",
    "500": "the endpoint answered HTTP 500",
    "garbage": "the endpoint did not speak HTTP as the API does (chat completion: malformed HTTP reply",
}


@pytest.mark.parametrize("kind", ["hang", "500", "garbage"])
def test_an_endpoint_that_answers_nothing_useful_before_any_success_stops_the_run_in_30_s_plus_a_timeout(
    write_pairs, tmp_path: Path, kind: str
) -> None:
    calls: list[float] = []

    async def failing(request: JudgeRequest) -> JudgeReply:
        calls.append(anyio.current_time())
        return await _fail(kind)

    result = run_engine_virtual(_config(write_pairs(200), tmp_path / "run", rps=50), provider=MockProvider(failing))
    assert result.exit_code == 1 and not result.complete
    assert isinstance(result.stopped_by, UnreachableError)
    assert result.error is not None and SAID[kind] in result.error
    assert "no request of this run has succeeded in 30 s" in result.error
    assert result.counts["failed"] == 0 and result.counts["done"] == 0
    assert result.stats["elapsed_s"] <= 30.0 + 3.0 + 0.5  # the outage window plus one request timeout
    assert len(calls) <= 16 + 6  # the first wave, then one probe at a time


@pytest.mark.parametrize("kind", ["hang", "500", "garbage"])
def test_forty_seconds_of_an_endpoint_answering_nothing_useful_after_successes_fails_no_row(
    write_pairs, tmp_path: Path, kind: str
) -> None:
    """From t=2 s to t=42 s (virtual) every request hangs, gets a 500 or garbage: the first
    failures are the rows' (the streak), then the breaker holds every row until the endpoint
    answers again; with the default five retries none fails."""
    state: dict[str, float] = {}

    async def flaky(request: JudgeRequest) -> JudgeReply:
        now = anyio.current_time()
        start = state.setdefault("start", now)
        if 2.0 <= now - start < 42.0:
            state["failed"] = state.get("failed", 0) + 1
            return await _fail(kind)
        await anyio.sleep(0.05)
        return OK

    result = run_engine_virtual(_config(write_pairs(3000), tmp_path / "run"), provider=MockProvider(flaky))
    failed = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet").filter(pl.col("status") == "failed")
    assert result.complete and result.exit_code == 0
    assert result.counts["failed"] == 0, failed.select("error", "attempts").to_dicts()
    assert result.stats["outages"] == 1 and state["failed"] <= 16 + 8  # then one probe at a time


def test_a_healthy_servers_random_500s_never_open_the_breaker(write_pairs, tmp_path: Path) -> None:
    draw = random.Random(25)

    async def two_percent(request: JudgeRequest) -> JudgeReply:
        await anyio.sleep(0.05)
        if draw.random() < 0.02:
            raise TransientError("HTTP 500 from Mistral API: Internal Server Error", status=500)
        return OK

    result = run_engine_virtual(_config(write_pairs(5000), tmp_path / "run"), provider=MockProvider(two_percent))
    assert result.complete and result.counts["ok"] == 5000
    assert result.stats["outages"] == 0 and result.stats["retries"] >= 50


def test_a_limit_shown_by_429s_below_min_rps_stops_the_run_saying_so(write_pairs, tmp_path: Path) -> None:
    """The server announces nothing and refuses the second request for half a minute: it
    admits one request a minute, below the default floor of 0.1 a second."""
    calls: list[float] = []

    async def one_a_minute(request: JudgeRequest) -> JudgeReply:
        calls.append(anyio.current_time())
        await anyio.sleep(0.2)
        if len(calls) > 1:
            raise RateLimitError("HTTP 429 from Mistral API: Rate limit exceeded", retry_after=30.0)
        return OK

    result = run_engine_virtual(_config(write_pairs(100), tmp_path / "run", concurrency=1),
                                provider=MockProvider(one_a_minute))
    assert result.exit_code == 1 and result.counts["failed"] == 0 and result.counts["ok"] == 1
    assert result.error is not None and result.error.startswith(
        "LimitTooLowError: the server allows about 1 requests per minute (it answered 429 after 1 in 60 s "
        "and announces no limit): at most 0.0167 requests a second, below --min-rps 0.1"
    )
    assert len(calls) == 2


# -- real HTTP -------------------------------------------------------------------------------
async def _garbage(request: web.Request) -> web.StreamResponse:
    """Bytes that are not HTTP, then the connection closed."""
    if request.transport is not None:
        request.transport.write(b"\x00\x01\xffNOT HTTP AT ALL\r\n\r\n")
    await asyncio.sleep(0.05)
    if request.transport is not None:
        request.transport.close()
    return web.Response()


async def _hang(until: Callable[[], bool]) -> web.StreamResponse | None:
    """No reply until ``until()`` holds; then the normal one (to a client long gone)."""
    while not until():
        await asyncio.sleep(0.05)
    return None


def _failure(kind: str, request: web.Request, until: Callable[[], bool]) -> Awaitable[web.StreamResponse | None] | web.StreamResponse:
    if kind == "hang":
        return _hang(until)
    if kind == "500":
        return web.json_response({"object": "error", "message": "Internal Server Error"}, status=500)
    return _garbage(request)


def _cli_run(data: Path, out: Path, url: str):  # type: ignore[no-untyped-def]
    return batchjudge_cli("run", str(data), "--out", str(out), "--provider", "mistral", "--base-url", url,
                          "--timeout", "3", "--quiet", env={"MISTRAL_API_KEY": KEY}, timeout=180)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hang", "500", "garbage"])
def test_a_real_server_answering_nothing_useful_stops_the_run_with_exit_1_and_the_resume_completes(
    write_pairs, tmp_path: Path, kind: str
) -> None:
    released = threading.Event()
    data, out = write_pairs(50), tmp_path / "run"
    with HostileServer(lambda request, n: _failure(kind, request, released.is_set)) as server:
        started = time.monotonic()
        stopped = _cli_run(data, out, server.url)
        elapsed = time.monotonic() - started
        recorded = list((out / "results").glob("*.parquet"))
        released.set()
        server.script = None
        resumed = _cli_run(data, out, server.url)
    print(f"{kind}: stopped after {elapsed:.1f} s")  # the figure the closing note reports
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert stopped.returncode == 1, stopped.stderr
    assert len(errors) == 1 and {"hang": "sent no reply within 3 s", "500": "answered HTTP 500",
                                 "garbage": "did not speak HTTP"}[kind] in errors[0]
    assert elapsed < 60  # 30 s of outage and one 3 s timeout, plus start-up on a busy machine
    assert not recorded  # no row recorded, failed or not
    assert resumed.returncode == 0, resumed.stderr
    assert pl.read_parquet(out / "results" / "*.parquet")["status"].to_list() == ["ok"] * 50


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hang", "500", "garbage"])
def test_forty_seconds_of_a_real_server_answering_nothing_useful_after_successes_fails_no_row(
    write_pairs, tmp_path: Path, kind: str
) -> None:
    """Real HTTP: after 100 answers the server hangs, answers 500 or speaks garbage for 40 s."""
    began: list[float] = []

    def over() -> bool:
        return time.monotonic() - began[0] >= 40.0

    def script(request: web.Request, n: int) -> Awaitable[web.StreamResponse | None] | web.StreamResponse | None:
        if not began and server.answered < 100:
            return None
        if not began:
            began.append(time.monotonic())
        return None if over() else _failure(kind, request, over)

    server = HostileServer(script, latency=0.01)
    with server:
        result = run(RunConfig(inputs=[write_pairs(600)], out=tmp_path / "run", provider="mistral", api_key=KEY,
                               base_url=server.url, concurrency=8, rps=20, timeout=3.0, check_labels=False))
    assert began and result.complete and result.exit_code == 0
    assert result.counts["failed"] == 0 and result.counts["ok"] == 600
    assert result.stats["outages"] >= 1


def test_a_tiny_announced_limit_stops_the_run_with_the_servers_figure_on_screen(write_pairs, tmp_path: Path) -> None:
    def tiny(request: web.Request, n: int) -> web.StreamResponse:
        reply = chat_reply()
        reply.headers["x-ratelimit-limit-req-second"] = "0.000001"
        reply.headers["x-ratelimit-remaining-req-second"] = "0"
        return reply

    out = tmp_path / "run"
    with HostileServer(tiny) as server:
        proc = _cli_run(write_pairs(20), out, server.url)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, proc.stderr
    assert len(errors) == 1 and errors[0].startswith(
        "error: LimitTooLowError: the server allows 1e-06 requests per second (x-ratelimit-limit-req-second): "
        "at most 1e-06 requests a second, below --min-rps 0.1; stopped instead of crawling"
    )
    results = list((out / "results").glob("*.parquet"))
    assert not results or pl.read_parquet(results)["status"].to_list().count("failed") == 0


# -- option errors ---------------------------------------------------------------------------
runner = CliRunner()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--base-url", "http://127.0.0.1:99999"], "--base-url 'http://127.0.0.1:99999' is not a valid URL"),
        (["--base-url", "http://127.0.0.1:abc"], "--base-url 'http://127.0.0.1:abc' is not a valid URL"),
        (["--base-url", "http://127.0.0.1:0"], "--base-url 'http://127.0.0.1:0' is not a valid URL (port 0)"),
        (["--base-url", "http://[::1"], "--base-url 'http://[::1' is not a valid URL"),
        (["--rps", "inf"], "--rps must be a finite number, got inf"),
        (["--rps", "nan"], "--rps must be a finite number, got nan"),
        (["--rps", "-1"], "--rps must be at least --min-rps 0.1, got -1.0"),
        (["--rps", "0.01"], "--rps must be at least --min-rps 0.1, got 0.01"),
        (["--rpm", "5"], "--rpm must be at least 60 x --min-rps (6), got 5.0"),
        (["--tpm", "inf"], "--tpm must be a finite number, got inf"),
        (["--min-rps", "0"], "--min-rps must be > 0, got 0.0"),
        (["--timeout", "inf"], "--timeout must be a finite number, got inf"),
        (["--max-retry-after", "inf"], "--max-retry-after must be a finite number, got inf"),
        (["--flush-seconds", "inf"], "--flush-seconds must be a finite number, got inf"),
        (["--concurrency", "100000000"], "--concurrency must be between 1 and 10,000, got 100000000"),
        (["--samples", "100000000", "--temperature", "1"], "--samples must be between 1 and 100, got 100000000"),
        (["--seed", "99999999999999999999999"], "--seed must fit in 64 bits, got 99999999999999999999999"),
        (["--progress-every", "inf"], "--progress-every must be a finite number, got inf"),
        (["--max-tokens", "99999999"], "--max-tokens (99999999) must be at least 0 and below"),
    ],
)
def test_a_bad_option_is_one_line_exit_2_and_creates_nothing(
    write_pairs, tmp_path: Path, options: list[str], named: str
) -> None:
    out = tmp_path / "run"
    args = ["run", str(write_pairs(5)), "--out", str(out), "--provider", "mistral", "--quiet", *options]
    result = runner.invoke(app, args, env={"MISTRAL_API_KEY": KEY}, terminal_width=400)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert not out.exists()


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["report", ".", "--resamples", "0"], "Invalid value for '--resamples'"),
        (["run", "x.parquet", "--rps", "fast"], "Invalid value for '--rps'"),
        (["run", "x.parquet", "--bogus"], "No such option: --bogus"),
        (["run"], "Missing argument"),
    ],
)
def test_an_option_the_parser_refuses_is_one_line_exit_2_naming_it(command: list[str], named: str) -> None:
    """Values the command line's parser refuses (a type, a range, an unknown option) read like
    every other error: one ``error:`` line naming the option and where the help is."""
    result = runner.invoke(app, command, terminal_width=400)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert "-h'" in lines[0]


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_an_emulator_port_out_of_range_is_one_line_exit_2(port: str) -> None:
    result = runner.invoke(app, ["emulator", "--port", port], terminal_width=400)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: --port must be between 0 and 65535 (0: any free port), got {port}"


def test_the_min_rps_floor_can_be_lowered_for_a_slow_limit_on_purpose(write_pairs, tmp_path: Path) -> None:
    result = run_engine_virtual(_config(write_pairs(4), tmp_path / "run", rpm=5, min_rps=0.05),
                                provider=MockProvider(lambda request: OK))
    assert result.complete and result.counts["ok"] == 4

