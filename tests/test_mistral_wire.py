"""The Mistral wire format both transports share: bodies, waits, error mapping, reply checks."""

from __future__ import annotations

import email.utils
import time

import pytest

from batchjudge.adapters.mistral._wire import (
    error_for_status,
    kept_headers,
    reply_from_payload,
    request_body,
    retry_after,
)
from batchjudge.core.types import JudgeRequest
from batchjudge.errors import (
    AuthError,
    BadRequestError,
    RateLimitError,
    TransientError,
)


def _request(**overrides: object) -> JudgeRequest:
    fields: dict[str, object] = {
        "row_id": "r1",
        "messages": [{"role": "user", "content": "hi"}],
        "premise": "p",
        "hypothesis": "h",
        "model": "",
    }
    fields.update(overrides)
    return JudgeRequest(**fields)  # type: ignore[arg-type]


def test_the_body_carries_generation_parameters_and_only_the_options_that_are_set() -> None:
    body = request_body(_request(), "mistral-small-latest")
    assert body == {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0,
        "max_tokens": 256,
    }
    fmt = {"type": "json_object"}
    body = request_body(_request(model="open-mistral-7b", seed=3, response_format=fmt), "x")
    assert body["model"] == "open-mistral-7b"
    assert body["random_seed"] == 3
    assert body["response_format"] == fmt


def test_retry_after_ms_is_preferred_to_retry_after_seconds() -> None:
    assert retry_after({"retry-after-ms": "1250", "retry-after": "2"}) == 1.25
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None


def test_retry_after_as_an_http_date_is_read_as_seconds_from_now() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert retry_after({"retry-after": when}) == pytest.approx(30, abs=1.5)


def test_429_is_a_rate_limit_carrying_the_wait_the_server_asked_for() -> None:
    exc = error_for_status(
        429, {"retry-after": "1", "retry-after-ms": "640"}, b'{"message": "slow down"}'
    )
    assert isinstance(exc, RateLimitError)
    assert exc.retry_after == 0.64
    assert "slow down" in str(exc)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_and_408_are_transient(status: int) -> None:
    exc = error_for_status(status, {}, b"upstream trouble")
    assert type(exc) is TransientError and exc.status == status
    assert "upstream trouble" in str(exc)


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth_errors_that_say_to_check_the_key(status: int) -> None:
    exc = error_for_status(status, {}, b'{"message": "Unauthorized"}')
    assert isinstance(exc, AuthError)
    assert "MISTRAL_API_KEY" in str(exc)


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_other_4xx_are_bad_requests_with_the_apis_message(status: int) -> None:
    body = b'{"object": "error", "message": "Invalid model: nope", "type": "invalid_model"}'
    exc = error_for_status(status, {}, body)
    assert type(exc) is BadRequestError and exc.status == status
    assert "Invalid model: nope" in str(exc)


def test_validation_details_are_summarised_field_by_field() -> None:
    body = b'{"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}'
    assert "body.messages: field required" in str(error_for_status(422, {}, body))


def test_only_rate_limit_headers_and_the_emulator_mark_are_kept_lower_cased() -> None:
    headers = {"X-RateLimit-Remaining-Tokens-Minute": "10", "Server": "x", "date": "now", "X-Batchjudge-Emulator": "1"}
    assert kept_headers(headers) == {"x-ratelimit-remaining-tokens-minute": "10", "x-batchjudge-emulator": "1"}


def _completion(content: object = '{"consistency": 1}', usage: object = None) -> dict[str, object]:
    return {
        "id": "c1",
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": usage if usage is not None else {"prompt_tokens": 12, "completion_tokens": 5},
    }


def test_a_well_formed_completion_gives_its_text_usage_and_model() -> None:
    reply = reply_from_payload(_completion(), {"x-ratelimit-remaining-req-second": "3"})
    assert reply.text == '{"consistency": 1}'
    assert (reply.prompt_tokens, reply.completion_tokens) == (12, 5)
    assert reply.model == "mistral-small-latest"
    assert reply.headers == {"x-ratelimit-remaining-req-second": "3"}


def test_chunked_text_content_is_joined() -> None:
    chunks = [{"type": "text", "text": "Consis"}, {"type": "text", "text": "tent"}]
    assert reply_from_payload(_completion(chunks), {}).text == "Consistent"


@pytest.mark.parametrize(
    "payload",
    [
        _completion(content=None),
        _completion(usage={"prompt_tokens": "12", "completion_tokens": 5}),
        {"choices": []},
        {"id": "x"},
        ["not", "an", "object"],
    ],
)
def test_a_reply_that_breaks_the_schema_is_a_transient_malformed_reply(payload: object) -> None:
    with pytest.raises(TransientError, match="malformed reply"):
        reply_from_payload(payload, {})
