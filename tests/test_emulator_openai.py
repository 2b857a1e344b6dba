"""``--api openai``: an OpenAI-compatible server, and each API refusing the other's field names."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
import pytest
from emulator_fixtures import (  # noqa: F401  (emulator is a fixture)
    MODEL,
    TEST_KEY,
    FakeClock,
    StartEmulator,
    emulator,
    judge_requests,
)

from batchjudge.adapters.prompts import JSON_SCHEMA
from batchjudge.emulator import BASE_MODELS, EmulatorServer
from batchjudge.localjudge import LocalJudge

REQUEST = judge_requests(1)[0]
BODY: dict[str, Any] = {"model": MODEL, "messages": REQUEST.messages}


def _post(server: EmulatorServer, body: dict[str, Any], key: str = TEST_KEY) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx2.post(f"{server.url}/v1/chat/completions", json=body, headers=headers)


def test_openai_mode_answers_with_seed_and_json_mode_in_openais_shape(
    emulator: StartEmulator,
) -> None:
    server = emulator(api="openai")
    reply = _post(server, {**BODY, "seed": 7, "response_format": {"type": "json_object"}})
    assert reply.status_code == 200
    completion = reply.json()
    assert completion["id"].startswith("chatcmpl-") and completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    assert set(choice) == {"index", "message", "logprobs", "finish_reason"}
    assert choice["message"]["refusal"] is None
    verdict = LocalJudge.load("local-judge").predict(REQUEST.premise, REQUEST.hypothesis).verdict
    assert orjson.loads(choice["message"]["content"])["consistency"] == verdict
    assert reply.headers["x-batchjudge-emulator"] == "1"


@pytest.mark.parametrize("field", ["random_seed", "safe_prompt"])
def test_openai_mode_refuses_mistral_only_fields_as_openai_does(
    emulator: StartEmulator, field: str
) -> None:
    server = emulator(api="openai")
    refused = _post(server, {**BODY, field: 7 if field == "random_seed" else False})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": {
            "message": f"Unrecognized request argument supplied: {field}",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_mistral_mode_refuses_openais_seed_as_an_extra_input(emulator: StartEmulator) -> None:
    refused = _post(emulator(), {**BODY, "seed": 7})
    assert refused.status_code == 422
    (detail,) = refused.json()["detail"]
    assert detail["type"] == "extra_forbidden" and detail["loc"] == ["body", "seed"]
    assert detail["msg"] == "Extra inputs are not permitted"


def test_openai_mode_lists_models_and_answers_an_unknown_one_with_404(
    emulator: StartEmulator,
) -> None:
    server = emulator(api="openai")
    listed = httpx2.get(f"{server.url}/v1/models").json()
    unknown = _post(server, {**BODY, "model": "gpt-nope"})
    assert listed["object"] == "list"
    assert {m["id"] for m in listed["data"]} == set(BASE_MODELS)
    assert all(set(m) == {"id", "object", "created", "owned_by"} for m in listed["data"])
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"


def test_openai_mode_refuses_a_wrong_key_without_repeating_it(emulator: StartEmulator) -> None:
    server = emulator(api="openai", api_key="the-right-key")
    refused = _post(server, BODY, key="sk-wrong-secret-42")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-secret-42" not in refused.text


def test_openai_mode_rate_limits_in_openais_words_and_headers(
    emulator: StartEmulator,
) -> None:
    server = emulator(api="openai", rpm=1, clock=FakeClock())
    admitted = _post(server, BODY)
    refused = _post(server, BODY)
    assert admitted.headers["x-ratelimit-limit-requests"] == "1"
    assert admitted.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert refused.headers["retry-after"] == "60"


def test_openai_mode_serves_no_mistral_only_api(emulator: StartEmulator) -> None:
    server = emulator(api="openai")
    root = httpx2.get(f"{server.url}/").json()
    assert httpx2.get(f"{server.url}/v1/files").status_code == 404
    assert httpx2.get(f"{server.url}/v1/batch/jobs").status_code == 404
    assert root["emulator"] is True and "OpenAI-compatible" in root["message"]
    assert "api=openai" in root["config"] and "headers=openai" in root["config"]


def test_the_openai_sdk_works_against_openai_mode(emulator: StartEmulator) -> None:
    openai = pytest.importorskip("openai")
    server = emulator(api="openai")
    client = openai.OpenAI(api_key=TEST_KEY, base_url=f"{server.url}/v1", max_retries=0)
    reply = client.chat.completions.create(
        model=MODEL, messages=REQUEST.messages, seed=3, response_format=JSON_SCHEMA
    )
    assert set(orjson.loads(reply.choices[0].message.content or "")) == {"consistency", "reason"}
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert {m.id for m in client.models.list()} == set(BASE_MODELS)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=REQUEST.messages, extra_body={"random_seed": 3}
        )
    assert "random_seed" in str(info.value)
