"""Exact Mistral token counts, offline.

``mistral-common`` ships every Mistral tokenizer (sentencepiece v1/v2/v3/v7 and Tekken) inside
the wheel, so counts match what the API bills without any network call. Each model name maps to
a tokenizer *family*; one tokenizer per family is loaded lazily on first use (never at import
time: Tekken takes most of a second to load) and cached behind a lock, so worker threads share
it safely. Unknown model names fall back to the newest family (Tekken), which is then a close
estimate rather than an exact count.

Fine-tuned model names (``ft:open-mistral-7b:abc:20240101:xyz``) count with their base model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from batchjudge.core.types import Message
from batchjudge.errors import ConfigError

if TYPE_CHECKING:
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    _Tokenizer: TypeAlias = MistralTokenizer[Any, Any, Any, Any, Any]

__all__ = [
    "base_model",
    "context_window",
    "count_chat_tokens",
    "count_tokens",
    "tokenizer_family",
    "truncate_to_tokens",
]

# Ordered (prefix, family): the first prefix the model name starts with wins. Sources: the
# tokenizer table of Mistral's tokenization guide and mistral-common's own legacy model map.
_FAMILY_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("open-mistral-nemo", "tekken"),
    ("open-mistral-7b", "v3"),  # Mistral 7B v0.3 (32,768-token vocabulary)
    ("mistral-tiny-2312", "v2"),
    ("mistral-tiny", "v3"),
    ("open-mixtral-8x7b", "v1"),
    ("mistral-embed", "v1"),
    ("mistral-medium-2312", "v1"),
    ("open-mixtral-8x22b", "v3"),
    ("mistral-small-2312", "v2"),
    ("mistral-small-2402", "v2"),
    ("mistral-large-2402", "v2"),
    ("mistral-large-2407", "v3"),
    ("mistral-large-2411", "v7"),
    ("mistral-large-latest", "v7"),
    ("pixtral-large", "v7"),
    ("codestral-2405", "v3"),
    ("codestral-mamba", "v3"),
)
_DEFAULT_FAMILY = "tekken"

_TEKKEN_FILE = "tekken_240911.json"

_cache: dict[str, _Tokenizer] = {}
_lock = threading.Lock()


def base_model(model: str) -> str:
    """The base model of a fine-tuned name (``ft:BASE:...`` → ``BASE``); others unchanged."""
    if model.startswith("ft:"):
        parts = model.split(":")
        if len(parts) > 1 and parts[1]:
            return parts[1]
    return model


def tokenizer_family(model: str) -> str:
    """The tokenizer family (``v1``, ``v2``, ``v3``, ``v7`` or ``tekken``) a model counts with."""
    name = base_model(model).lower()
    for prefix, family in _FAMILY_BY_PREFIX:
        if name.startswith(prefix):
            return family
    return _DEFAULT_FAMILY


def _load(family: str) -> _Tokenizer:
    """Build one tokenizer from the files bundled with mistral-common (no network)."""
    import mistral_common
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    loaders: dict[str, Callable[[], _Tokenizer]] = {
        "v1": MistralTokenizer.v1,
        "v2": MistralTokenizer.v2,
        "v3": MistralTokenizer.v3,
        "v7": MistralTokenizer.v7,
        "tekken": lambda: MistralTokenizer.from_file(
            str(Path(mistral_common.__file__).parent / "data" / _TEKKEN_FILE)
        ),
    }
    try:
        return loaders[family]()
    except Exception as exc:  # a broken install: say what is missing, once
        raise ConfigError(
            f"cannot load the Mistral {family} tokenizer from mistral-common: {exc}"
        ) from exc


def _tokenizer(model: str) -> _Tokenizer:
    family = tokenizer_family(model)
    tok = _cache.get(family)
    if tok is None:
        with _lock:
            tok = _cache.get(family)
            if tok is None:
                tok = _load(family)
                _cache[family] = tok
    return tok


def _encode(text: str, model: str) -> list[int]:
    return _tokenizer(model).instruct_tokenizer.tokenizer.encode(text, bos=False, eos=False)


def count_tokens(text: str, model: str) -> int:
    """Tokens of ``text`` alone (no BOS, no chat markup) for ``model``'s tokenizer.

    For Tekken the count is read from its tiktoken core directly: mistral-common's ``encode``
    then shifts every id in a Python loop, which tripled the cost (0.26 ms against 0.08 ms for
    a 2,000-character document) and changes no count.
    """
    if not text:
        return 0
    core = getattr(_tokenizer(model).instruct_tokenizer.tokenizer, "_model", None)
    if core is not None and hasattr(core, "encode_ordinary"):
        # mistral-common registers no special tokens with tiktoken, so the plain encode's
        # special-token scan finds nothing and only costs time (2.5x on a 1,800-char text)
        return len(core.encode_ordinary(text) if not core.special_tokens_set else core.encode(text))
    return len(_encode(text, model))


def count_chat_tokens(messages: Sequence[Message], model: str) -> int:
    """Prompt tokens of a whole chat request, chat markup and BOS included.

    This is what the API reports as ``usage.prompt_tokens`` for the same messages. A trailing
    assistant message (a fine-tuning example's answer) is counted as part of the sequence.

    Alternating user/assistant turns without a system prompt are tokenised message by message
    between fixed markup, so the count is that markup (measured once per tokenizer and role
    sequence) plus each message's own tokens. This skips mistral-common's full chat encoding,
    which decodes every prompt back to text (two thirds of its cost). A system prompt is folded
    into the last user message by Mistral's older formats, where the seam can merge tokens, and
    consecutive same-role messages are merged: those chats are encoded whole.
    """
    roles = tuple(m.get("role", "") for m in messages)
    if not _per_message(roles) or not all(isinstance(m.get("content"), str) for m in messages):
        return _encode_chat(messages, model)
    key = (tokenizer_family(model), roles)
    markup = _markup.get(key)
    if markup is None:
        probe = [{"role": role, "content": "x"} for role in roles]
        markup = _encode_chat(probe, model) - len(roles) * count_tokens("x", model)
        _markup[key] = markup
    return markup + sum(count_tokens(m.get("content", ""), model) for m in messages)


_markup: dict[tuple[str, tuple[str, ...]], int] = {}


def _per_message(roles: tuple[str, ...]) -> bool:
    """Whether each message of a chat with these roles is tokenised on its own."""
    return (
        bool(roles)
        and roles[0] == "user"
        and all(r == ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(roles))
    )


def _encode_chat(messages: Sequence[Message], model: str) -> int:
    """Tokens of the chat through mistral-common's own chat encoder."""
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    classes = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
    converted = []
    for i, message in enumerate(messages):
        role = message.get("role", "")
        cls = classes.get(role)
        if cls is None:
            raise ConfigError(f"message {i}: unknown role {role!r} (system, user or assistant)")
        converted.append(cls(content=message.get("content", "")))
    request = ChatCompletionRequest(messages=converted)
    tok = _tokenizer(model)
    try:
        # Normalise and encode without the serving validator, which refuses a trailing
        # assistant message (the answer of a fine-tuning example).
        instruct = tok._instruct_request_normalizer.from_chat_completion_request(request)
        encoded = tok.instruct_tokenizer.encode_instruct(instruct)
    except Exception as exc:  # say which rule of the chat format broke
        raise ConfigError(f"messages cannot be encoded for {model}: {exc}") from exc
    return len(encoded.tokens)


def truncate_to_tokens(text: str, max_tokens: int, model: str) -> tuple[str, int]:
    """Cut ``text`` to at most ``max_tokens`` tokens, keeping its beginning.

    Returns the cut text — always an exact prefix of ``text`` — and how many tokens were
    removed (0 when it already fits). The kept tokens are decoded to find the cut; where the
    decoding differs from the original (a character split across byte tokens decodes as
    U+FFFD), the cut moves back to the last character both agree on.
    """
    if max_tokens < 0:
        raise ValueError("max_tokens must be >= 0")
    ids = _encode(text, model)
    if len(ids) <= max_tokens:
        return text, 0
    decoded = _tokenizer(model).instruct_tokenizer.tokenizer.decode(ids[:max_tokens])
    end = len(os.path.commonprefix([text, decoded]))
    kept_tokens = count_tokens(text[:end], model)
    while kept_tokens > max_tokens:  # re-tokenising a prefix can merge pieces differently
        end = max(0, end - 8)
        kept_tokens = count_tokens(text[:end], model)
    return text[:end], len(ids) - kept_tokens


# Ordered (prefix, context window in tokens) from Mistral's model cards; unknown models get the
# smallest current window so that a cut, if any, errs on the safe side.
_CONTEXT_BY_PREFIX: tuple[tuple[str, int], ...] = (
    ("open-mistral-7b", 32_768),
    ("open-mixtral-8x7b", 32_768),
    ("open-mixtral-8x22b", 65_536),
    ("open-mistral-nemo", 131_072),
    ("mistral-tiny", 32_768),
    ("mistral-small-2312", 32_768),
    ("mistral-small-2402", 32_768),
    ("mistral-small", 131_072),
    ("mistral-medium", 131_072),
    ("mistral-large-2402", 32_768),
    ("mistral-large", 131_072),
    ("ministral", 131_072),
    ("pixtral", 131_072),
    ("codestral-2405", 32_768),
    ("codestral", 262_144),
    ("magistral", 40_000),
)
_DEFAULT_CONTEXT = 32_768


def context_window(model: str) -> int:
    """The model's context window in tokens (prompt plus completion)."""
    name = base_model(model).lower()
    for prefix, window in _CONTEXT_BY_PREFIX:
        if name.startswith(prefix):
            return window
    return _DEFAULT_CONTEXT
