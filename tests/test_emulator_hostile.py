"""A hostile or broken server, over real HTTP: echoed keys, huge replies, day-long Retry-After,
outages that reset every connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import orjson
import pytest
from emulator_fixtures import (  # noqa: F401  (emulator is a fixture)
    MODEL,
    FakeClock,
    StartEmulator,
    emulator,
    judge_requests,
    sdk_over_http,
)

from batchjudge.emulator import EmulatorServer, FaultSpec, parse_outage
from batchjudge.emulator.fault_replies import HUGE_BODY_BYTES
from batchjudge.errors import ConfigError

BODY: dict[str, Any] = {"model": MODEL, "messages": judge_requests(1)[0].messages}
SECRET = "sk-echo-me-not-0123456789"


def _client(server: EmulatorServer, key: str = SECRET) -> httpx2.Client:
    return httpx2.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})


def test_echo_faults_send_every_error_shape_with_the_bearer_key_in_the_body(
    emulator: StartEmulator,
) -> None:
    server = emulator(faults="echo:1")
    with _client(server) as http:
        replies = [http.post("/v1/chat/completions", json=BODY) for _ in range(5)]
    assert [r.status_code for r in replies] == [400, 401, 422, 500, 400]
    assert all(f"Bearer {SECRET}" in r.text for r in replies)
    assert [r.headers["content-type"].split(";")[0] for r in replies] == [
        *["application/json"] * 4,
        "text/plain",
    ]
    assert replies[0].json()["request_headers"]["authorization"] == f"Bearer {SECRET}"
    assert server.stats()["faults"] == {"echo": 5}


def test_a_huge_fault_answers_a_valid_chat_completion_of_about_ten_megabytes(
    emulator: StartEmulator,
) -> None:
    server = emulator(faults="huge:1")
    with _client(server) as http:
        reply = http.post("/v1/chat/completions", json=BODY)
    assert reply.status_code == 200
    assert HUGE_BODY_BYTES * 0.9 < len(reply.content) < HUGE_BODY_BYTES * 1.1
    completion = orjson.loads(reply.content)
    assert len(completion["choices"][0]["message"]["content"]) > HUGE_BODY_BYTES * 0.9
    assert completion["usage"]["completion_tokens"] > 1_000_000


def test_a_retry_after_fault_tells_the_client_to_wait_a_day_and_counts_who_does_not(
    emulator: StartEmulator, clock: FakeClock
) -> None:
    server = emulator(faults="retry-after=86400:1", clock=clock)
    with _client(server) as http:
        refused = http.post("/v1/chat/completions", json=BODY)
        clock.now += 3600
        http.post("/v1/chat/completions", json=BODY)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "86400"
    assert refused.headers["x-batchjudge-limit"] == "fault"
    assert refused.json()["type"] == "rate_limited"
    stats = server.stats()
    assert (stats["early_arrivals"], stats["retry_after_violations"]) == (1, 1)
    assert stats["faults"] == {"retry-after=86400": 2}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _fails_to_connect(request: Callable[[], httpx2.Response]) -> bool:
    """True when the request ends in a connection error, never an HTTP status."""
    try:
        request()
    except httpx2.TransportError:
        return True
    return False


def test_a_scheduled_outage_resets_new_and_kept_alive_connections_then_ends(
    emulator: StartEmulator, clock: FakeClock
) -> None:
    server = emulator(outage=(5.0, 3.0), clock=clock)
    with _client(server) as kept:
        assert kept.post("/v1/chat/completions", json=BODY).status_code == 200  # starts the clock
        clock.now = 1004.9
        assert kept.get("/v1/models").status_code == 200
        clock.now = 1005.0
        assert _fails_to_connect(lambda: kept.get("/v1/models"))
        with _client(server) as fresh:
            assert _fails_to_connect(lambda: fresh.get("/v1/models"))
        clock.now = 1008.0
        assert kept.post("/v1/chat/completions", json=BODY).status_code == 200
    outage = server.stats()["outage"]
    assert outage["resets"] >= 2 and outage["active"] is False


def test_an_outage_on_demand_starts_after_its_own_reply_and_the_sdk_sees_a_connection_error(
    emulator: StartEmulator, clock: FakeClock
) -> None:
    server = emulator(clock=clock)
    with sdk_over_http(server.url) as sdk, httpx2.Client(base_url=server.url) as admin:
        started = admin.post("/admin/outage", json={"seconds": 2})
        assert started.status_code == 200 and started.json()["outage"]["active"] is True
        with pytest.raises(httpx2.TransportError):
            sdk.chat.complete(model=MODEL, messages=BODY["messages"])
        clock.now += 2.0
        assert sdk.chat.complete(model=MODEL, messages=BODY["messages"]).choices


def test_the_admin_outage_needs_a_positive_number_of_seconds(emulator: StartEmulator) -> None:
    server = emulator()
    with httpx2.Client(base_url=server.url) as admin:
        assert admin.post("/admin/outage", json={"seconds": 0}).status_code == 422
        assert admin.post("/admin/outage", json={}).status_code == 422
        assert admin.get("/v1/models").status_code == 200


def test_the_new_fault_kinds_parse_and_a_bad_wait_is_refused() -> None:
    spec = FaultSpec.parse("echo:0.1,huge:0.1,retry-after=86400:0.1")
    assert dict(spec.entries) == {"echo": 0.1, "huge": 0.1, "retry-after=86400": 0.1}
    for bad in ("retry-after=soon:0.1", "retry-after=0:0.1", "retry-after=-5:0.1"):
        with pytest.raises(ConfigError, match="positive number of seconds"):
            FaultSpec.parse(bad)


def test_an_outage_is_at_colon_for_in_seconds() -> None:
    assert parse_outage("5:3") == (5.0, 3.0)
    assert parse_outage("0:0.5") == (0.0, 0.5)
    for bad in ("5", "5:0", "-1:3", "soon:3", "5:inf"):
        with pytest.raises(ConfigError, match="--outage"):
            parse_outage(bad)
