"""The chat-completions wire format: request body, reply check, ``Retry-After``, errors.

Mistral's API and the OpenAI-compatible servers that host the same open-weight judges (vLLM,
llama.cpp, TGI, Ollama) speak the same format with small differences, named by a
:class:`Dialect`: the seed field (``random_seed`` or ``seed``), the environment variable the
key comes from, and how errors name the server. Building the body, checking a reply against
the schema, reading ``Retry-After`` and translating a status into batchjudge's error tree live
here once, for every client of the package (chat, batch mode, fine-tuning). Nothing here ever
sees the API key, but a server may echo it (with the request's headers) into an error body:
the server's words are scrubbed before they become part of any error message.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from batchjudge.core.scrub import scrub_text
from batchjudge.core.types import JudgeReply, JudgeRequest
from batchjudge.errors import (
    AuthError,
    BadRequestError,
    ProviderError,
    RateLimitError,
    TransientError,
)

__all__ = [
    "EMULATOR_HEADER",
    "MISTRAL",
    "OPENAI",
    "Dialect",
    "error_for_status",
    "kept_headers",
    "reply_from_parts",
    "reply_from_payload",
    "request_body",
    "retry_after",
]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between Mistral's API and an OpenAI-compatible one."""

    name: str
    label: str
    """How messages name the server: ``the Mistral API``."""
    key_env: str
    """The environment variable the API key is read from by default."""
    default_base_url: str
    seed_field: str
    """The body field carrying the sampling seed."""


MISTRAL = Dialect("mistral", "the Mistral API", "MISTRAL_API_KEY", "https://api.mistral.ai", "random_seed")
OPENAI = Dialect("openai", "the server", "OPENAI_API_KEY", "https://api.openai.com", "seed")

EMULATOR_HEADER = "x-batchjudge-emulator"
"""Every reply of ``batchjudge emulator`` carries it: kept, so a run can say what answered it."""

_MAX_MESSAGE = 300
_KEPT_PREFIXES = ("x-ratelimit", "ratelimit", EMULATOR_HEADER)


def request_body(request: JudgeRequest, model: str, dialect: Dialect = MISTRAL) -> dict[str, Any]:
    """The JSON body of ``POST /v1/chat/completions`` for one request."""
    body: dict[str, Any] = {
        "model": request.model or model,
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if request.seed is not None:
        body[dialect.seed_field] = request.seed
    if request.response_format is not None:
        body["response_format"] = request.response_format
    return body


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers of a reply (``x-ratelimit*``, ``ratelimit*``), lower-cased, which
    the engine learns limits from, and :data:`EMULATOR_HEADER`."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(_KEPT_PREFIXES)}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (preferred, precise) or ``Retry-After``.

    ``Retry-After`` may be seconds or an HTTP date; anything unreadable gives ``None``.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _api_message(body: bytes | str) -> str:
    """The server's own words from an error body (``message`` or ``detail``), scrubbed, then
    shortened (in that order, so a cut can never leave part of a key behind)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return " ".join(scrub_text(text).split())[:_MAX_MESSAGE] or "(empty body)"
    message: Any = payload
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):  # OpenAI's {"error": {"message": ...}}
            payload = error
        message = payload.get("message") or payload.get("detail") or payload
        if isinstance(message, list):  # FastAPI-style validation details
            message = "; ".join(
                f"{'.'.join(map(str, d.get('loc', ())))}: {d.get('msg', '')}"
                if isinstance(d, dict)
                else str(d)
                for d in message
            )
    text = message if isinstance(message, str) else orjson.dumps(message).decode()
    return " ".join(scrub_text(text).split())[:_MAX_MESSAGE]


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    dialect: Dialect = MISTRAL,
    *,
    what: str | None = None,
) -> ProviderError:
    """The batchjudge error for a non-2xx reply (429 → RateLimitError with its wait, …);
    ``what`` (``upload chunk-00001.jsonl``) prefixes the message when given."""
    message = f"{f'{what}: ' if what else ''}HTTP {status} from {dialect.label}: {_api_message(body)}"
    error = _error_for(status, message, headers, dialect)
    error.headers = kept_headers(headers)
    return error


def _error_for(status: int, message: str, headers: Mapping[str, str], dialect: Dialect) -> ProviderError:
    if status == 429:
        return RateLimitError(message, retry_after=retry_after(headers))
    if status in (401, 403):
        return AuthError(f"{message} — the API key was rejected; check {dialect.key_env}", status=status)
    if status == 408 or status >= 500:
        return TransientError(message, status=status, retry_after=retry_after(headers))
    if 400 <= status < 500:
        return BadRequestError(message, status=status)
    return TransientError(message, status=status)


def _text(content: Any) -> str | None:
    """The reply text: a string, or the text chunks of a chunked content joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [c.get("text") for c in content if isinstance(c, dict) and c.get("type") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
    return None


def reply_from_parts(
    content: Any,
    prompt_tokens: Any,
    completion_tokens: Any,
    model: Any,
    headers: dict[str, str],
    dialect: Dialect = MISTRAL,
) -> JudgeReply:
    """A reply from its checked parts, or TransientError("malformed reply ...") naming the flaw."""
    text = _text(content)
    if text is None:
        raise TransientError(f"malformed reply from {dialect.label}: no text content")
    if not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int):
        raise TransientError(f"malformed reply from {dialect.label}: usage is not integers")
    return JudgeReply(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        model=model if isinstance(model, str) else "",
        headers=headers,
    )


def reply_from_payload(payload: Any, headers: dict[str, str], dialect: Dialect = MISTRAL) -> JudgeReply:
    """Check a decoded chat completion against the schema and turn it into a reply."""
    try:
        message = payload["choices"][0]["message"]
        usage = payload["usage"]
        return reply_from_parts(
            message.get("content"),
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            payload.get("model"),
            headers,
            dialect,
        )
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TransientError(f"malformed reply from {dialect.label}: not a chat completion") from None
