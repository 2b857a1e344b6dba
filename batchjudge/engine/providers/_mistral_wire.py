"""The Mistral chat-completions wire format, shared by both transports of the provider.

Building the request body, checking a reply against the schema, reading ``Retry-After``, and
translating an HTTP status into batchjudge's error tree all live here, once, so the ``http``
and ``sdk`` transports cannot drift apart. Nothing here ever sees the API key.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import orjson

from batchjudge.core.types import JudgeReply, JudgeRequest
from batchjudge.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    ProviderError,
    RateLimitError,
    TransientError,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "error_for_status",
    "kept_headers",
    "normalise_base_url",
    "reply_from_parts",
    "reply_from_payload",
    "request_body",
    "retry_after",
]

DEFAULT_BASE_URL = "https://api.mistral.ai"


def normalise_base_url(base_url: str | None) -> str:
    """``https://host[/prefix]`` without a trailing slash or ``/v1`` (every client adds it).

    One rule for every Mistral client of the project: the chat provider, batch mode and the
    fine-tuning launcher.
    """
    url = (base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--base-url {url!r} must start with http:// or https://")
    return url

_MAX_MESSAGE = 300
_KEPT_PREFIX = "x-ratelimit-"


def request_body(request: JudgeRequest, model: str) -> dict[str, Any]:
    """The JSON body of ``POST /v1/chat/completions`` for one request."""
    body: dict[str, Any] = {
        "model": request.model or model,
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if request.seed is not None:
        body["random_seed"] = request.seed
    if request.response_format is not None:
        body["response_format"] = request.response_format
    return body


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers of a reply, lower-cased (what the engine may learn from)."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(_KEPT_PREFIX)}


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
    """The API's own words from an error body (``message`` or ``detail``), shortened."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return " ".join(text.split())[:_MAX_MESSAGE] or "(empty body)"
    message: Any = payload
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("detail") or payload
        if isinstance(message, list):  # FastAPI-style validation details
            message = "; ".join(
                f"{'.'.join(map(str, d.get('loc', ())))}: {d.get('msg', '')}"
                if isinstance(d, dict)
                else str(d)
                for d in message
            )
    text = message if isinstance(message, str) else orjson.dumps(message).decode()
    return text[:_MAX_MESSAGE]


def error_for_status(status: int, headers: Mapping[str, str], body: bytes | str) -> ProviderError:
    """The batchjudge error for a non-2xx reply (429 → RateLimitError with its wait, …)."""
    message = f"HTTP {status} from the Mistral API: {_api_message(body)}"
    if status == 429:
        return RateLimitError(message, retry_after=retry_after(headers))
    if status in (401, 403):
        return AuthError(
            f"{message} — the API key was rejected; check MISTRAL_API_KEY", status=status
        )
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
    content: Any, prompt_tokens: Any, completion_tokens: Any, model: Any, headers: dict[str, str]
) -> JudgeReply:
    """A reply from its checked parts, or TransientError("malformed reply ...") naming the flaw."""
    text = _text(content)
    if text is None:
        raise TransientError("malformed reply from the Mistral API: no text content")
    if not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int):
        raise TransientError("malformed reply from the Mistral API: usage is not integers")
    return JudgeReply(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        model=model if isinstance(model, str) else "",
        headers=headers,
    )


def reply_from_payload(payload: Any, headers: dict[str, str]) -> JudgeReply:
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
        )
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TransientError(
            "malformed reply from the Mistral API: not a chat completion"
        ) from None
