"""The emulator speaks the Mistral API as the official SDK sends it (in-process, ASGI)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from emulator_fixtures import MODEL, TEST_KEY, judge_requests, sdk_over_asgi
from mistralai.client.errors import ResponseValidationError, SDKError

from batchjudge.adapters.parsing import parse_verdict
from batchjudge.adapters.prompts import JSON_SCHEMA
from batchjudge.adapters.tokens import count_chat_tokens, count_tokens
from batchjudge.emulator import BASE_MODELS, EmulatorConfig, FaultSpec, create_app
from batchjudge.emulator.chat import NO_DOCUMENT_REASON
from batchjudge.localjudge import LocalJudge

pytestmark = pytest.mark.anyio



@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _app(**options: Any) -> Any:
    faults = options.pop("faults", "")
    return create_app(EmulatorConfig(faults=FaultSpec.parse(faults), **options))


def _raw(app: Any) -> httpx2.AsyncClient:
    """A plain HTTP client on the app, for what the SDK does not expose (headers, REST)."""
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="http://emulator",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    )


async def test_json_mode_answers_the_local_judges_verdict_with_real_token_usage() -> None:
    client = sdk_over_asgi(_app())
    judge = LocalJudge.load("local-judge")
    for request in judge_requests(4):
        reply = await client.chat.complete_async(
            model=MODEL, messages=request.messages, response_format={"type": "json_object"}
        )
        content = orjson.loads(reply.choices[0].message.content)
        expected = judge.predict(request.premise, request.hypothesis)
        assert content == {"consistency": expected.verdict, "reason": expected.reason}
        assert reply.usage.prompt_tokens == count_chat_tokens(request.messages, MODEL)
        assert reply.usage.completion_tokens == count_tokens(
            reply.choices[0].message.content, MODEL
        )
        assert reply.model == MODEL


async def test_json_schema_answers_an_object_with_exactly_the_schemas_properties() -> None:
    client = sdk_over_asgi(_app())
    request = judge_requests(1)[0]
    reply = await client.chat.complete_async(
        model=MODEL, messages=request.messages, response_format=JSON_SCHEMA
    )
    content = orjson.loads(reply.choices[0].message.content)
    assert set(content) == {"consistency", "reason"}
    assert content["consistency"] in (0, 1) and isinstance(content["reason"], str)


async def test_without_json_mode_the_answer_is_a_short_sentence_the_parser_reads() -> None:
    client = sdk_over_asgi(_app())
    judge = LocalJudge.load("local-judge")
    for request in judge_requests(2):
        reply = await client.chat.complete_async(model=MODEL, messages=request.messages)
        text = reply.choices[0].message.content
        assert not text.lstrip().startswith("{")
        assert (
            parse_verdict(text).verdict
            == judge.predict(request.premise, request.hypothesis).verdict
        )


async def test_a_prompt_without_a_recoverable_document_gets_consistent_and_says_why() -> None:
    client = sdk_over_asgi(_app())
    reply = await client.chat.complete_async(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the best French cheese?"}],
        response_format={"type": "json_object"},
    )
    assert orjson.loads(reply.choices[0].message.content) == {
        "consistency": 1,
        "reason": NO_DOCUMENT_REASON,
    }


async def test_an_unknown_model_is_a_400_naming_it() -> None:
    client = sdk_over_asgi(_app())
    with pytest.raises(SDKError) as info:
        await client.chat.complete_async(
            model="gpt-nope", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 400
    assert "Invalid model: gpt-nope" in info.value.body


async def test_a_body_without_messages_is_a_422_validation_error() -> None:
    async with _raw(_app()) as raw:
        response = await raw.post("/v1/chat/completions", json={"model": MODEL})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "messages"]


async def test_models_are_listed_as_the_sdk_expects() -> None:
    client = sdk_over_asgi(_app())
    listed = await client.models.list_async()
    assert {m.id for m in listed.data or []} == set(BASE_MODELS)


async def test_files_round_trip_through_upload_retrieve_and_download() -> None:
    client = sdk_over_asgi(_app())
    content = b'{"custom_id": "a", "body": {"messages": []}}\n'
    uploaded = await client.files.upload_async(
        file={"file_name": "in.jsonl", "content": content}, purpose="batch"
    )
    assert (uploaded.filename, uploaded.purpose, uploaded.size_bytes) == (
        "in.jsonl",
        "batch",
        len(content),
    )
    retrieved = await client.files.retrieve_async(file_id=uploaded.id)
    assert retrieved.id == uploaded.id and retrieved.num_lines == 1
    downloaded = await client.files.download_async(file_id=uploaded.id)
    assert await downloaded.aread() == content


async def _wait_for(client: Any, job_id: str, states: set[str]) -> Any:
    for _ in range(500):
        job = await client.batch.jobs.get_async(job_id=job_id)
        if job.status in states:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"batch job stayed {job.status}")


async def test_a_batch_job_answers_every_line_in_the_documented_output_format() -> None:
    client = sdk_over_asgi(_app(queue_s=0.0))
    requests = judge_requests(3)
    lines = [
        {
            "custom_id": r.row_id,
            "body": {"messages": r.messages, "response_format": {"type": "json_object"}},
        }
        for r in requests
    ] + [{"custom_id": "broken", "body": {"messages": "not a list"}}]
    uploaded = await client.files.upload_async(
        file={"file_name": "batch.jsonl", "content": b"\n".join(orjson.dumps(x) for x in lines)},
        purpose="batch",
    )
    job = await client.batch.jobs.create_async(
        input_files=[uploaded.id], endpoint="/v1/chat/completions", model=MODEL
    )
    done = await _wait_for(client, job.id, {"SUCCESS", "FAILED"})
    assert done.status == "SUCCESS"
    assert (done.total_requests, done.succeeded_requests, done.failed_requests) == (4, 3, 1)
    output = await client.files.download_async(file_id=done.output_file)
    results = [orjson.loads(x) for x in (await output.aread()).splitlines()]
    judge = LocalJudge.load("local-judge")
    assert [r["custom_id"] for r in results] == [r.row_id for r in requests]
    for result, request in zip(results, requests):
        assert result["error"] is None and result["response"]["status_code"] == 200
        content = orjson.loads(result["response"]["body"]["choices"][0]["message"]["content"])
        assert content["consistency"] == judge.predict(request.premise, request.hypothesis).verdict
    errors = await client.files.download_async(file_id=done.error_file)
    (failure,) = [orjson.loads(x) for x in (await errors.aread()).splitlines()]
    assert failure["custom_id"] == "broken" and failure["response"]["status_code"] == 422
    assert failure["error"]["message"]
    listed = await client.batch.jobs.list_async()
    assert [j.id for j in listed.data or []] == [job.id]


async def test_a_queued_batch_job_can_be_cancelled() -> None:
    client = sdk_over_asgi(_app(queue_s=0.2))
    job = await client.batch.jobs.create_async(
        requests=[{"custom_id": "0", "body": {"messages": [{"role": "user", "content": "x"}]}}],
        endpoint="/v1/chat/completions",
        model=MODEL,
    )
    assert job.status == "QUEUED"
    cancelling = await client.batch.jobs.cancel_async(job_id=job.id)
    assert cancelling.status == "CANCELLATION_REQUESTED"
    assert (await _wait_for(client, job.id, {"CANCELLED"})).status == "CANCELLED"


async def test_fine_tuning_answers_410_gone_when_started_with_ft_gone() -> None:
    async with _raw(_app(ft_gone=True)) as raw:
        response = await raw.post("/v1/fine_tuning/jobs", json={"model": "open-mistral-7b"})
        listing = await raw.get("/v1/fine_tuning/jobs")
    assert response.status_code == 410 and listing.status_code == 410
    assert "removed" in response.json()["message"]


async def test_a_fine_tuning_job_trains_a_judge_that_then_answers_as_ft_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BATCHJUDGE_HOME", str(tmp_path))  # where trained judges are registered
    app = _app(queue_s=0.0)
    client = sdk_over_asgi(app)
    examples = []
    for request in judge_requests(40, preset="ft"):
        label = 1 if int(request.row_id.split("-")[1]) % 2 == 0 else 0
        answer = {"role": "assistant", "content": orjson.dumps({"consistency": label}).decode()}
        examples.append(orjson.dumps({"messages": [*request.messages, answer]}))
    uploaded = await client.files.upload_async(
        file={"file_name": "train.jsonl", "content": b"\n".join(examples)}, purpose="fine-tune"
    )
    async with _raw(app) as raw:
        created = (
            await raw.post(
                "/v1/fine_tuning/jobs",
                json={
                    "model": "open-mistral-7b",
                    "training_files": [{"file_id": uploaded.id, "weight": 1}],
                    "suffix": "judge",
                    "auto_start": False,
                },
            )
        ).json()
        assert created["status"] == "VALIDATED"
        await raw.post(f"/v1/fine_tuning/jobs/{created['id']}/start")
        for _ in range(1000):
            job = (await raw.get(f"/v1/fine_tuning/jobs/{created['id']}")).json()
            if job["status"] not in ("QUEUED", "RUNNING"):
                break
            await asyncio.sleep(0.01)
    assert job["status"] == "SUCCESS", job.get("message")
    name = job["fine_tuned_model"]
    assert name.startswith("ft:open-mistral-7b:judge:")
    listed = await client.models.list_async()
    assert name in {m.id for m in listed.data or []}
    request = judge_requests(1, preset="ft")[0]
    reply = await client.chat.complete_async(
        model=name, messages=request.messages, response_format={"type": "json_object"}
    )
    assert orjson.loads(reply.choices[0].message.content)["consistency"] in (0, 1)


async def test_requests_over_the_rps_limit_get_429_with_retry_after_and_rate_headers() -> None:
    app = _app(rps=2, headers="second")  # the shape that names the per-second window
    request = judge_requests(1)[0]
    body = {"model": MODEL, "messages": request.messages}
    async with _raw(app) as raw:
        first = await raw.post("/v1/chat/completions", json=body)
        await raw.post("/v1/chat/completions", json=body)
        refused = await raw.post("/v1/chat/completions", json=body)
        await asyncio.sleep(0.05)  # past the in-flight grace: this one knew about the 429
        early = await raw.post("/v1/chat/completions", json=body)
        stats = (await raw.get("/stats")).json()
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-req-second"] == "2"
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert 0 < int(refused.headers["retry-after-ms"]) <= 1000
    assert early.status_code == 429
    assert stats["rate_limited"] == 2
    assert stats["retry_after_violations"] == 1  # `early` came before its Retry-After expired
    assert stats["by_status"] == {"200": 2, "429": 2}


async def test_a_tokens_per_minute_limit_refuses_with_the_wait_for_tokens_to_expire() -> None:
    request = judge_requests(1)[0]
    body = {"model": MODEL, "messages": request.messages}
    async with _raw(_app()) as raw:
        usage = (await raw.post("/v1/chat/completions", json=body)).json()["usage"]
    cost = usage["prompt_tokens"] + usage["completion_tokens"]
    app = _app(tpm=2 * cost - 1)  # room for one request and its answer, not for two
    async with _raw(app) as raw:
        first = await raw.post("/v1/chat/completions", json=body)
        refused = await raw.post("/v1/chat/completions", json=body)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-tokens-query-cost"] == str(cost)
    assert first.headers["x-ratelimit-remaining-tokens-minute"] == str(cost - 1)
    assert refused.status_code == 429
    assert refused.headers["x-batchjudge-limit"] == "tokens-minute"
    assert 59 <= int(refused.headers["retry-after"]) <= 60


async def test_a_wrong_key_gets_401_when_the_emulator_requires_one() -> None:
    app = _app(api_key="the-right-key")
    with pytest.raises(SDKError) as info:
        await sdk_over_asgi(app, api_key="wrong").chat.complete_async(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 401
    ok = await sdk_over_asgi(app, api_key="the-right-key").models.list_async()
    assert ok.data


async def test_it_says_plainly_that_it_is_an_emulator() -> None:
    async with _raw(_app()) as raw:
        root = await raw.get("/")
        models = await raw.get("/v1/models")
    assert root.json()["emulator"] is True and "not the real API" in root.json()["message"]
    assert models.headers["x-batchjudge-emulator"] == "1"


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("503", SDKError, 503),
        ("nonjson", SDKError, 200),
        ("malformed", ResponseValidationError, 200),
    ],
)
async def test_injected_faults_reach_the_sdk_as_the_real_failure_would(
    fault: str, error: type[Exception], status: int
) -> None:
    client = sdk_over_asgi(_app(faults=f"{fault}:1"))
    with pytest.raises(error) as info:
        await client.chat.complete_async(model=MODEL, messages=judge_requests(1)[0].messages)
    assert info.value.status_code == status  # type: ignore[attr-defined]


async def test_latency_delays_each_answer_by_the_configured_time() -> None:
    client = sdk_over_asgi(_app(latency_ms=150, jitter_ms=0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    await client.chat.complete_async(model=MODEL, messages=judge_requests(1)[0].messages)
    assert loop.time() - start >= 0.15
