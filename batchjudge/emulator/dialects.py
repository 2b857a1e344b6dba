"""The two APIs the emulator can speak (``--api``): how each shapes errors, replies and models.

``mistral`` is the hosted Mistral API: errors are ``{"object": "error", "message", "type",
"param", "code"}``; a 429 is ``{"object": "error", "message": "Rate limit exceeded", "type":
"rate_limited", "param": null, "code": "1300", "raw_status_code": 429}`` (the body the hosted
API sent in 2026, as quoted in cline/cline#9085 and raycast/extensions#31107).

``openai`` is an OpenAI-compatible server (OpenAI itself, vLLM, ...): errors are ``{"error":
{"message", "type", "param", "code"}}``, Mistral-only fields are refused with 400
"Unrecognized request argument supplied: NAME", an unknown model is a 404, and a 429 says which
per-minute limit was reached (``"type": "requests"`` or ``"tokens"``,
``"code": "rate_limit_exceeded"``).

Neither body says which emulated window refused a request beyond what the API itself says; the
emulator-only header ``x-batchjudge-limit`` names it (for tests and benchmarks, never for a
client's decisions).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from starlette.responses import Response

from batchjudge.emulator import responses
from batchjudge.emulator.chat import ChatError
from batchjudge.emulator.limits import TOKENS_MINUTE, TOKENS_MONTH
from batchjudge.emulator.state import ModelEntry

__all__ = ["Dialect", "MistralDialect", "OpenAIDialect", "dialect_for"]


class Dialect(Protocol):
    """What differs between the APIs the emulator speaks."""

    name: str
    identity: str

    def error(
        self, status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        """An error reply in this API's shape."""
        ...

    def chat_error(self, exc: ChatError, headers: Mapping[str, str]) -> Response:
        """A refused chat request (validation, unknown model, wrong field names)."""
        ...

    def rate_limited(self, window: str, headers: Mapping[str, str]) -> Response:
        """A 429 for a request ``window`` refused."""
        ...

    def unauthorized(self) -> Response:
        """A 401 for a missing or wrong API key (never echoing the key)."""
        ...

    def completion(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The chat completion object as this API sends it."""
        ...

    def model_card(self, entry: ModelEntry) -> dict[str, Any]:
        """A model as ``GET /v1/models`` lists it."""
        ...


class MistralDialect:
    """The hosted Mistral API."""

    name = "mistral"
    identity = (
        "This is the batchjudge emulator of the Mistral API, not the real API: answers come "
        "from a local judge; limits, latency and faults are simulated."
    )

    def error(
        self, status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return responses.error(status, message, kind=kind, headers=headers)

    def chat_error(self, exc: ChatError, headers: Mapping[str, str]) -> Response:
        return responses.json(exc.body, exc.status, headers)

    def rate_limited(self, window: str, headers: Mapping[str, str]) -> Response:
        body = {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
            "raw_status_code": 429,
        }
        return responses.json(body, 429, headers)

    def unauthorized(self) -> Response:
        return responses.error(401, "Unauthorized", kind="unauthorized")

    def completion(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def model_card(self, entry: ModelEntry) -> dict[str, Any]:
        return entry.card()


def _openai_error(
    status: int,
    message: str,
    kind: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return responses.json(body, status, headers)


class OpenAIDialect:
    """An OpenAI-compatible chat completions server."""

    name = "openai"
    identity = (
        "This is the batchjudge emulator of an OpenAI-compatible API, not a real one: answers "
        "come from a local judge; limits, latency and faults are simulated."
    )

    def error(
        self, status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return _openai_error(status, message, kind, headers=headers)

    def chat_error(self, exc: ChatError, headers: Mapping[str, str]) -> Response:
        if exc.reason == "invalid_model":
            model = exc.message.removeprefix("Invalid model: ")
            message = f"The model `{model}` does not exist or you do not have access to it."
            return _openai_error(
                404, message, "invalid_request_error", code="model_not_found", headers=headers
            )
        param = None if exc.reason == "unrecognized_argument" else exc.param
        kind = "invalid_request_error"
        return _openai_error(400, exc.message, kind, param=param, headers=headers)

    def rate_limited(self, window: str, headers: Mapping[str, str]) -> Response:
        unit = "tokens" if window in (TOKENS_MINUTE, TOKENS_MONTH) else "requests"
        period = "per month" if window == TOKENS_MONTH else "per min"
        message = f"Rate limit reached for {unit} {period}. Please try again later."
        return _openai_error(429, message, unit, code="rate_limit_exceeded", headers=headers)

    def unauthorized(self) -> Response:
        return _openai_error(
            401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"
        )

    def completion(self, payload: dict[str, Any]) -> dict[str, Any]:
        choices = [
            {
                "index": c["index"],
                "message": {
                    "role": "assistant",
                    "content": c["message"]["content"],
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": c["finish_reason"],
            }
            for c in payload["choices"]
        ]
        return {
            **payload,
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "choices": choices,
            "system_fingerprint": None,
        }

    def model_card(self, entry: ModelEntry) -> dict[str, Any]:
        return {
            "id": entry.id,
            "object": "model",
            "created": entry.created,
            "owned_by": "batchjudge-emulator",
        }


def dialect_for(api: str) -> Dialect:
    """The dialect of ``--api`` (``mistral`` or ``openai``)."""
    return OpenAIDialect() if api == "openai" else MistralDialect()
