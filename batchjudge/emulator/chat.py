"""Answering one chat completion as the hosted API would, with the local judge as the model.

The pair is recovered from the rendered prompt (:func:`extract_pair`), judged by the local
judge registered for the model, and returned as the API's chat completion object. Usage is
counted with the model's real tokenizer. Tokenizer and judge work is cached by content, so a
retried or repeated request costs the server almost nothing.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from batchjudge.adapters.prompts import extract_pair
from batchjudge.adapters.tokens import count_chat_tokens, count_tokens, truncate_to_tokens
from batchjudge.emulator.state import ModelEntry
from batchjudge.errors import BatchJudgeError

__all__ = [
    "NO_DOCUMENT_REASON",
    "ChatError",
    "PreparedChat",
    "answer_text",
    "chat_completion",
    "check_chat_body",
    "check_fields",
    "prepare",
    "prompt_tokens",
    "text_tokens",
    "warm_up",
]

NO_DOCUMENT_REASON = "emulator could not find a document"
"""The reason given when no (document, summary) pair can be recovered from the prompt."""

_CACHE_SIZE = 1 << 16


_OPENAI_ONLY_FIELDS = ("seed", "max_completion_tokens", "stream_options")
"""OpenAI's names the hosted Mistral API refuses (422 ``extra_forbidden``: it forbids unknown
fields, as reported for ``max_completion_tokens`` and ``stream_options``)."""
_MISTRAL_ONLY_FIELDS = ("random_seed", "safe_prompt", "prompt_mode")
"""Mistral's names OpenAI refuses (400 "Unrecognized request argument supplied: NAME")."""


class ChatError(Exception):
    """A request the API would refuse: ``status`` and the Mistral-style error ``body``.

    ``reason`` says why in a word (``invalid``, ``invalid_model``, ``extra_forbidden``,
    ``unrecognized_argument``) and ``param`` names the field, so that another dialect (OpenAI)
    can say the same thing in its own shape.
    """

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        *,
        reason: str = "invalid",
        param: str | None = None,
    ) -> None:
        super().__init__(body.get("message", status))
        self.status = status
        self.body = body
        self.reason = reason
        self.param = param

    @property
    def message(self) -> str:
        """The error's one-line message."""
        return str(self.args[0])


def _invalid(message: str, loc: str, kind: str = "invalid") -> ChatError:
    """422 in the shape FastAPI/the hosted API uses (the SDK parses it as HTTPValidationError)."""
    detail = [{"type": kind, "loc": ["body", loc], "msg": message}]
    body = {"object": "error", "message": message, "detail": detail}
    return ChatError(422, body, reason=kind, param=loc)


def check_fields(body: dict[str, Any], api: str) -> int | None:
    """Refuse the other API's field names; return the completion cap (``max_tokens``) if any.

    ``api`` is ``"mistral"`` or ``"openai"``. OpenAI also takes ``max_completion_tokens``.
    """
    if api == "openai":
        for name in _MISTRAL_ONLY_FIELDS:
            if name in body:
                message = f"Unrecognized request argument supplied: {name}"
                raise ChatError(
                    400,
                    {"object": "error", "message": message, "type": "invalid_request_error"},
                    reason="unrecognized_argument",
                )
        names: tuple[str, ...] = ("max_completion_tokens", "max_tokens")
    else:
        for name in _OPENAI_ONLY_FIELDS:
            if name in body:
                raise _invalid("Extra inputs are not permitted", name, "extra_forbidden")
        names = ("max_tokens",)
    for name in names:
        cap = body.get(name)
        if cap is None:
            continue
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise _invalid(f"{name} must be a positive integer", name)
        return cap
    return None


def check_chat_body(body: Any) -> tuple[str, list[dict[str, str]]]:
    """The model and messages of a request body, or :class:`ChatError` 422 naming the field."""
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object", "body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("field required: model", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("field required: messages (a non-empty list)", "messages")
    for i, message in enumerate(messages):
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise _invalid(f"messages[{i}] needs a string role and content", "messages")
    return model, messages


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _chat_tokens(model: str, messages: tuple[tuple[str, str], ...]) -> int:
    return count_chat_tokens([{"role": r, "content": c} for r, c in messages], model)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def text_tokens(model: str, text: str) -> int:
    """Tokens of ``text`` alone for ``model`` (cached by content)."""
    return count_tokens(text, model)


@functools.lru_cache(maxsize=1024)
def _markup_tokens(model: str, head: tuple[tuple[str, str], ...]) -> int:
    """Tokens of the chat markup around a last user message (measured once per prompt shape)."""
    probe = [*({"role": r, "content": c} for r, c in head), {"role": "user", "content": "x"}]
    return count_chat_tokens(probe, model) - count_tokens("x", model)


def prompt_tokens(model: str, messages: list[dict[str, str]]) -> int:
    """Prompt tokens the API would bill for ``messages``; ChatError 400 if they cannot encode.

    Without a system message the last user message is tokenised on its own between fixed
    markup, so its count is that markup (cached per prompt shape) plus its own tokens — the
    same exact figure as a full chat encoding at a third of the cost. Other chats are encoded
    whole.
    """
    try:
        last = messages[-1]
        if last["role"] == "user" and all(m["role"] != "system" for m in messages):
            head = tuple((m["role"], m["content"]) for m in messages[:-1])
            return _markup_tokens(model, head) + text_tokens(model, last["content"])
        return _chat_tokens(model, tuple((m["role"], m["content"]) for m in messages))
    except BatchJudgeError as exc:
        raise ChatError(
            400,
            {"object": "error", "message": str(exc), "type": "invalid_request_message_order"},
            param="messages",
        ) from exc


@functools.lru_cache(maxsize=64)
def _load_judge(judge_name: str) -> Any:
    from batchjudge.localjudge import LocalJudge

    return LocalJudge.load(judge_name)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _judge(judge_name: str, premise: str, hypothesis: str) -> tuple[int, str]:
    judgement = _load_judge(judge_name).predict(premise, hypothesis)
    return int(judgement.verdict), str(judgement.reason)


def warm_up(models: Iterable[str], judge_name: str) -> None:
    """Load every tokenizer ``models`` count with, and the judge, before serving.

    Loading a tokenizer takes up to a second; done on the first request it would stall the
    server past a client's timeout.
    """
    probe = [{"role": "user", "content": "warm up"}]
    for model in models:
        prompt_tokens(model, probe)
        text_tokens(model, "warm up")
    _load_judge(judge_name)


def _schema_object(schema: dict[str, Any], verdict: int, reason: str) -> dict[str, Any]:
    """An object that satisfies a simple ``json_schema`` (one level of typed properties)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return {"consistency": verdict, "reason": reason}
    out: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        enum = spec.get("enum") if isinstance(spec, dict) else None
        if isinstance(enum, list) and enum:
            wanted = [e for e in enum if e in (verdict, bool(verdict))]
            out[name] = wanted[0] if wanted else enum[0 if verdict else -1]
        elif kind == "integer":
            out[name] = verdict
        elif kind == "boolean":
            out[name] = bool(verdict)
        elif kind == "number":
            out[name] = float(verdict)
        elif kind == "string":
            out[name] = reason
        else:
            out[name] = None
    return out


def answer_text(judge_name: str, messages: list[dict[str, str]], response_format: Any) -> str:
    """The assistant's content: JSON in JSON mode / json_schema, a short sentence otherwise."""
    pair = extract_pair(messages)
    if pair is None:
        verdict, reason = 1, NO_DOCUMENT_REASON
    else:
        verdict, reason = _judge(judge_name, *pair)
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        obj = _schema_object(schema if isinstance(schema, dict) else {}, verdict, reason)
        return orjson.dumps(obj).decode()
    if kind == "json_object":
        return orjson.dumps({"consistency": verdict, "reason": reason}).decode()
    label = "Consistent" if verdict else "Inconsistent"
    return f"{label}. {reason}"


def chat_completion(
    model: str,
    judge_name: str,
    messages: list[dict[str, str]],
    response_format: Any,
    n_prompt_tokens: int,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The chat completion object for one request whose prompt tokens are already counted.

    An answer longer than ``max_tokens`` is cut there, with ``finish_reason`` ``"length"``.
    """
    text = answer_text(judge_name, messages, response_format)
    n_completion = text_tokens(model, text)
    finish = "stop"
    if max_tokens is not None and n_completion > max_tokens:
        text, removed = truncate_to_tokens(text, max_tokens, model)
        n_completion -= removed
        finish = "length"
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": n_prompt_tokens,
            "completion_tokens": n_completion,
            "total_tokens": n_prompt_tokens + n_completion,
        },
    }


@dataclass(frozen=True, slots=True)
class PreparedChat:
    """A validated chat request with its model's judge and its counted prompt tokens."""

    model: str
    judge: str
    messages: list[dict[str, str]]
    response_format: Any
    prompt_tokens: int
    max_tokens: int | None = None

    def complete(self) -> dict[str, Any]:
        """The chat completion object answering this request."""
        return chat_completion(
            self.model,
            self.judge,
            self.messages,
            self.response_format,
            self.prompt_tokens,
            self.max_tokens,
        )


def prepare(body: Any, models: Mapping[str, ModelEntry], api: str = "mistral") -> PreparedChat:
    """Validate a chat body against the known models and count its prompt; ChatError if not.

    ``api`` (``"mistral"`` or ``"openai"``) decides which field names are refused.
    """
    model, messages = check_chat_body(body)
    max_tokens = check_fields(body, api)
    entry = models.get(model)
    if entry is None:
        raise ChatError(
            400,
            {
                "object": "error",
                "message": f"Invalid model: {model}",
                "type": "invalid_model",
                "param": None,
                "code": "1500",
            },
            reason="invalid_model",
            param="model",
        )
    return PreparedChat(
        model,
        entry.judge,
        messages,
        body.get("response_format"),
        prompt_tokens(model, messages),
        max_tokens,
    )
