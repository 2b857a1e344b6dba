"""Mistral's rules for fine-tuning files, checked before anything is uploaded.

A file is JSON lines, one ``{"messages": [...]}`` object per line, each message a
``role`` (``system`` only first, then ``user``/``assistant``) and a non-empty string
``content``; every example has a user message and ends with the assistant's answer (the
tokens trained on). An example may not exceed :data:`MAX_SAMPLE_TOKENS` tokens (counted with
``mistral-common``'s tokenizer for the base model, chat markup included) and a file may not
exceed :data:`MAX_FILE_BYTES`. Each violation is an :class:`InputError` naming file and line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from batchjudge.adapters.parsing import parse_verdict
from batchjudge.adapters.tokens import count_chat_tokens
from batchjudge.datasets.io import require_file
from batchjudge.errors import ConfigError, InputError

__all__ = ["MAX_FILE_BYTES", "MAX_SAMPLE_TOKENS", "FileStats", "check_example", "check_file"]

MAX_FILE_BYTES = 512 * 1024 * 1024
"""The API's upload limit for one file (512 MB)."""

MAX_SAMPLE_TOKENS = 32_768
"""Longest example, in tokens, the hosted fine-tuning accepted (its training sequence length)."""

_ROLES = frozenset({"system", "user", "assistant"})


def check_example(example: Any, *, model: str, where: str, max_tokens: int = MAX_SAMPLE_TOKENS) -> int:
    """Check one example against the rules above; return its token count."""
    messages = example.get("messages") if isinstance(example, Mapping) else None
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise InputError(f"{where}: expected {{'messages': [...]}} with at least one message")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InputError(f"{where}: message {i} is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise InputError(f"{where}: message {i} has role {role!r} (allowed: system, user, assistant)")
        if role == "system" and i != 0:
            raise InputError(f"{where}: message {i}: a system message may only come first")
        if not isinstance(content, str) or not content.strip():
            raise InputError(f"{where}: message {i} ({role}) has empty content")
    if not any(m["role"] == "user" for m in messages):
        raise InputError(f"{where}: no user message")
    if messages[-1]["role"] != "assistant":
        raise InputError(f"{where}: the last message must be the assistant's answer")
    try:
        tokens = count_chat_tokens(list(messages), model)
    except ConfigError as exc:
        raise InputError(f"{where}: {exc}") from None
    if tokens > max_tokens:
        raise InputError(f"{where}: {tokens} tokens, over the {max_tokens}-token limit per example")
    return tokens


@dataclass(frozen=True)
class FileStats:
    """What a fine-tuning file holds: rows, tokens, label balance, size."""

    path: Path
    rows: int
    tokens: int
    max_example_tokens: int
    consistent: int
    inconsistent: int
    bytes: int
    unlabelled: int = 0
    """Answers the evaluator's parser reads no 0/1 verdict from (fine for other tasks)."""
    truncated_rows: int = 0
    """Rows whose document was cut to fit the context (known when the file is exported)."""
    documents: int | None = None
    """Distinct documents (known when the file is exported)."""


def check_file(path: Path, *, model: str, max_tokens: int = MAX_SAMPLE_TOKENS) -> FileStats:
    """Check every line of a fine-tuning JSONL file; InputError names the first bad line."""
    require_file(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {size} bytes, over the {MAX_FILE_BYTES}-byte upload limit")
    rows = tokens = longest = 0
    labels = [0, 0, 0]  # inconsistent, consistent, unlabelled
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                example = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc})") from None
            count = check_example(example, model=model, where=where, max_tokens=max_tokens)
            rows, tokens, longest = rows + 1, tokens + count, max(longest, count)
            verdict = parse_verdict(example["messages"][-1]["content"]).verdict
            labels[2 if verdict is None else verdict] += 1
    if rows == 0:
        raise InputError(f"{path}: no examples")
    return FileStats(path, rows, tokens, longest, labels[1], labels[0], size, unlabelled=labels[2])
