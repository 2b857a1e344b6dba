"""The ``mistral`` provider against the emulator over real HTTP, on both transports."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from emulator_fixtures import TEST_KEY, StartEmulator, emulator, judge_requests  # noqa: F401  (fixture)

from batchjudge.core.types import JudgeReply, RetryKind
from batchjudge.engine.providers.mistral import MistralProvider
from batchjudge.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    ProviderError,
    RateLimitError,
    TransientError,
    UnreachableError,
)

TRANSPORTS = ("http", "sdk")


def _provider(url: str, transport: str, **options: Any) -> MistralProvider:
    options.setdefault("api_key", TEST_KEY)
    return MistralProvider(
        model="mistral-small-latest", base_url=url, transport=transport, **options
    )


async def _judge_all(provider: MistralProvider, requests: list[Any]) -> list[JudgeReply]:
    try:
        return list(await asyncio.gather(*(provider.judge(r) for r in requests)))
    finally:
        await provider.aclose()


async def _failure(provider: MistralProvider) -> ProviderError:
    try:
        with pytest.raises(ProviderError) as info:
            await provider.judge(judge_requests(1)[0])
        return info.value
    finally:
        await provider.aclose()


def test_both_transports_give_identical_replies_on_the_emulator(emulator: StartEmulator) -> None:
    server = emulator(rps=1000, rpm=60_000)
    for preset_format in ("template", None, {"type": "json_object"}):
        requests = judge_requests(8, response_format=preset_format)
        http = asyncio.run(_judge_all(_provider(server.url, "http"), requests))
        sdk = asyncio.run(_judge_all(_provider(server.url, "sdk"), requests))
        assert [(r.text, r.prompt_tokens, r.completion_tokens, r.model) for r in http] == [
            (r.text, r.prompt_tokens, r.completion_tokens, r.model) for r in sdk
        ]
        assert all(r.headers.keys() == s.headers.keys() and r.headers for r, s in zip(http, sdk))
    assert server.stats()["by_status"] == {"200": 48}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rate_limit_headers_are_kept_on_the_reply(emulator: StartEmulator, transport: str) -> None:
    server = emulator(rps=50, rpm=3000, tpm=10**6)
    (reply,) = asyncio.run(_judge_all(_provider(server.url, transport), judge_requests(1)))
    assert reply.headers["x-ratelimit-limit-req-minute"] == "3000"
    assert reply.headers["x-ratelimit-limit-tokens-minute"] == "1000000"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_429_is_a_rate_limit_with_the_servers_wait(emulator: StartEmulator, transport: str) -> None:
    server = emulator(rps=1)
    provider = _provider(server.url, transport)

    async def two_calls() -> ProviderError:
        await provider.judge(judge_requests(1)[0])
        return await _failure(provider)

    exc = asyncio.run(two_calls())
    assert isinstance(exc, RateLimitError) and exc.status == 429
    assert exc.retry_after is not None and 0 < exc.retry_after <= 1.0
    assert provider.should_retry(exc).kind is RetryKind.RATE_LIMIT


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("fault", "error", "words", "retry"),
    [
        ("500", TransientError, "HTTP 500", RetryKind.TRANSIENT),
        ("malformed", TransientError, "malformed reply", RetryKind.TRANSIENT),
        ("nonjson", TransientError, "malformed reply", RetryKind.TRANSIENT),
        ("drop", TransientError, "connection error", RetryKind.TRANSIENT),
        ("slow", TransientError, "timeout", RetryKind.TRANSIENT),
        ("400", BadRequestError, "HTTP 400", RetryKind.NO),
    ],
)
def test_each_fault_maps_to_the_right_error_and_retry_decision(
    emulator: StartEmulator,
    transport: str,
    fault: str,
    error: type[ProviderError],
    words: str,
    retry: RetryKind,
) -> None:
    server = emulator(faults=f"{fault}:1", slow_s=5.0)
    provider = _provider(server.url, transport, timeout=0.5)
    exc = asyncio.run(_failure(provider))
    assert type(exc) is error
    assert words in str(exc)
    assert provider.should_retry(exc).kind is retry
    assert server.stats()["chat_completions"] == 1  # the provider (and the SDK) never retried


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_rejected_key_is_fatal_and_never_echoed(emulator: StartEmulator, transport: str) -> None:
    server = emulator(api_key="the-right-key")
    provider = _provider(server.url, transport, api_key="sk-wrong-secret-123")
    exc = asyncio.run(_failure(provider))
    assert isinstance(exc, AuthError) and exc.status == 401
    assert provider.should_retry(exc).kind is RetryKind.FATAL
    assert "sk-wrong-secret-123" not in str(exc) + repr(exc) + repr(provider)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_connection_is_an_unreachable_endpoint_naming_the_url(transport: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc = asyncio.run(_failure(_provider(f"http://127.0.0.1:{port}", transport, timeout=2)))
    assert isinstance(exc, UnreachableError) and isinstance(exc, TransientError)
    assert f"cannot connect to http://127.0.0.1:{port}" in str(exc) and exc.url == f"http://127.0.0.1:{port}"


def test_a_missing_key_is_an_auth_error_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(AuthError, match="MISTRAL_API_KEY"):
        MistralProvider(model="mistral-small-latest")


def test_the_key_is_read_from_the_environment_when_not_given(
    emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = emulator(api_key="env-key")
    monkeypatch.setenv("MISTRAL_API_KEY", "env-key")
    provider = MistralProvider(model="mistral-small-latest", base_url=server.url)
    (reply,) = asyncio.run(_judge_all(provider, judge_requests(1)))
    assert reply.text


def test_unknown_transports_and_base_urls_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="--transport"):
        MistralProvider(model="m", api_key="k", transport="grpc")
    with pytest.raises(ConfigError, match="--base-url"):
        MistralProvider(model="m", api_key="k", base_url="localhost:8787")


def test_a_base_url_ending_in_v1_is_accepted_as_the_same_server(emulator: StartEmulator) -> None:
    server = emulator()
    (reply,) = asyncio.run(_judge_all(_provider(server.url + "/v1/", "http"), judge_requests(1)))
    assert reply.text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_provider_serves_successive_event_loops(
    emulator: StartEmulator, transport: str
) -> None:
    server = emulator()
    provider = _provider(server.url, transport)
    for _ in range(2):
        assert asyncio.run(_judge_all(provider, judge_requests(2)))


def test_the_http_transport_says_when_each_request_is_written_and_if_it_opened_a_connection(
    emulator: StartEmulator,
) -> None:
    from batchjudge.core.sending import on_request_written

    server = emulator(rps=1000, rpm=60_000)
    written: list[tuple[str, bool]] = []

    async def judge(provider: MistralProvider, request: Any) -> JudgeReply:
        on_request_written.set(lambda new: written.append((request.row_id, new)))  # this task's context
        return await provider.judge(request)

    async def main() -> None:
        provider = _provider(server.url, "http")
        try:
            for request in judge_requests(2):  # one after the other: the second reuses the connection
                await judge(provider, request)
        finally:
            await provider.aclose()

    asyncio.run(main())
    assert written == [("row-0", True), ("row-1", False)]
