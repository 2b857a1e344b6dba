"""Specification of the ``local`` provider (``batchjudge.engine.providers.local``)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from batchjudge.adapters.parsing import parse_verdict
from batchjudge.engine.providers.local import LocalProvider
from batchjudge.core.types import JudgeReply, JudgeRequest, Provider, RetryKind
from batchjudge.errors import ConfigError
from batchjudge.localjudge import LocalJudge, register

DOC = "The council approved 47 new homes in Leeds on Monday, the mayor, Jane Smith, said."


def _request(hypothesis: str) -> JudgeRequest:
    return JudgeRequest(
        row_id="r1",
        messages=[{"role": "user", "content": "ignored by the local judge"}],
        premise=DOC,
        hypothesis=hypothesis,
        model="local-judge",
        prompt_tokens=321,
    )


def _judge(provider: LocalProvider, hypothesis: str) -> JudgeReply:
    return anyio.run(provider.judge, _request(hypothesis))


def test_the_provider_meets_the_engine_protocol() -> None:
    provider = LocalProvider()
    assert isinstance(provider, Provider) and provider.name == "local"
    assert provider.should_retry(ValueError("x")).kind is RetryKind.NO


def test_the_reply_is_json_with_verdict_score_and_reason_matching_the_judge() -> None:
    provider = LocalProvider()
    reply = _judge(provider, "The council approved 52 homes in Leeds.")
    body = json.loads(reply.text)
    expected = LocalJudge.load().predict(DOC, "The council approved 52 homes in Leeds.")
    assert body == {
        "consistency": expected.verdict,
        "score": round(expected.score, 6),
        "reason": expected.reason,
    }
    assert 'unsupported number "52"' in body["reason"]


def test_the_reply_parses_with_the_project_parser_and_keeps_the_score() -> None:
    reply = _judge(LocalProvider(), "The council approved 47 new homes in Leeds.")
    parsed = parse_verdict(reply.text)
    assert parsed.status == "ok" and parsed.verdict == 1
    assert parsed.score == json.loads(reply.text)["score"]


def test_usage_reports_the_counted_prompt_and_a_reply_estimate() -> None:
    reply = _judge(LocalProvider(), "The council approved 47 new homes in Leeds.")
    assert reply.prompt_tokens == 321
    assert reply.completion_tokens == len(reply.text) // 4
    assert reply.model == "local-judge"


def test_an_unknown_model_fails_at_construction_with_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no-such-model"):
        LocalProvider("no-such-model")


def test_the_provider_is_available_from_the_registry() -> None:
    from batchjudge.engine.providers import make_provider

    provider = make_provider("local", model="local-judge")
    assert isinstance(provider, LocalProvider)


def test_a_registered_model_is_served_by_name_and_reported_as_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHJUDGE_HOME", str(tmp_path))
    shipped = LocalJudge.load().to_dict()
    # A deliberately contrary judge: its intercept alone decides, so its verdict differs.
    zeros = [0.0] * len(shipped["coef"])
    contrary = {**shipped, "name": "ft:local-judge:test:1", "coef": zeros, "intercept": -5.0}
    register(LocalJudge.from_dict(contrary))
    provider = LocalProvider("ft:local-judge:test:1")
    reply = _judge(provider, "The council approved 47 new homes in Leeds.")
    assert reply.model == "ft:local-judge:test:1"
    assert json.loads(reply.text)["consistency"] == 0
