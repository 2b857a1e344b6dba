"""Pluggable edges of the engine: prompts, reply parsing and token counting.

Import from the submodules (``batchjudge.adapters.prompts`` …); this package re-exports the
names the engine and users need most.
"""

from __future__ import annotations

from batchjudge.adapters.parsing import ParsedVerdict, aggregate_votes, parse_verdict
from batchjudge.adapters.prompts import (
    DEFAULT_PRESET,
    JSON_OBJECT,
    JSON_SCHEMA,
    PRESETS,
    PromptAdapter,
    PromptTemplate,
    RenderedPrompt,
    extract_pair,
    load_prompt,
)
from batchjudge.adapters.tokens import (
    count_chat_tokens,
    count_tokens,
    truncate_to_tokens,
)

__all__ = [
    "DEFAULT_PRESET",
    "JSON_OBJECT",
    "JSON_SCHEMA",
    "PRESETS",
    "ParsedVerdict",
    "PromptAdapter",
    "PromptTemplate",
    "RenderedPrompt",
    "aggregate_votes",
    "count_chat_tokens",
    "count_tokens",
    "extract_pair",
    "load_prompt",
    "parse_verdict",
    "truncate_to_tokens",
]
