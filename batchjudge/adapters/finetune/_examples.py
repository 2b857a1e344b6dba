"""One fine-tuning example per labelled row, built with the evaluation's own prompt adapter.

The user message is exactly what ``batchjudge run --prompt P`` sends for the same row (the
same :class:`~batchjudge.adapters.prompts.PromptAdapter`, documents cut to the same context),
and the assistant message is the answer that prompt asks for, holding the row's label:

- a prompt that asks for a ``reason`` (``zero-shot``, ``few-shot``, a JSON-schema template, or
  any template mentioning "reason"): ``{"consistency": 0|1, "reason": "..."}``;
- otherwise (the ``ft`` preset's short answer): ``{"consistency": 0|1}``.

Every answer is checked to parse back (with the evaluator's :func:`parse_verdict`) to its own
label, so a model trained on it is scored by the rule it was taught. :func:`read_examples`
goes the other way — pairs from the user message (:func:`extract_pair`), labels from the
assistant's answer — and is what the local launcher and the emulator's training read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from batchjudge.adapters.parsing import parse_verdict
from batchjudge.adapters.prompts import (
    JSON_SCHEMA,
    PromptAdapter,
    PromptTemplate,
    extract_pair,
    preset_for,
)
from batchjudge.core.types import Message
from batchjudge.errors import InputError

__all__ = [
    "REASONS", "LabelledPairs", "answer_for", "asks_for_reason", "build_example", "read_examples", "training_preset",
]

REASONS: dict[int, str] = {
    1: "All statements in the summary are supported by the document.",
    0: "The summary contains statements that are not supported by or contradict the document.",
}
"""The reason given in answers of prompts that ask for one (the datasets carry no reasons)."""


def asks_for_reason(template: PromptTemplate) -> bool:
    """True when the template's answer format has a ``reason`` next to the verdict."""
    return template.response_format == JSON_SCHEMA or "reason" in template.user.lower()


def answer_for(template: PromptTemplate, target: int) -> str:
    """The assistant's answer that ``template`` asks for, carrying label ``target`` (0 or 1)."""
    if target not in (0, 1):
        raise InputError(f"target must be 0 or 1, got {target!r}")
    answer: dict[str, object] = {"consistency": target}
    if asks_for_reason(template):
        answer["reason"] = REASONS[target]
    text = orjson.dumps(answer).decode()
    parsed = parse_verdict(text)
    if parsed.verdict != target:  # the evaluator would read another label: never write it
        raise InputError(f"prompt {template.name!r}: answer {text} does not parse back to {target}")
    return text


def build_example(adapter: PromptAdapter, premise: str, hypothesis: str, target: int) -> tuple[dict[str, list[Message]], int]:
    """``({"messages": [..., user, assistant]}, document tokens cut)`` for one labelled row."""
    rendered = adapter.render(premise, hypothesis)
    answer: Message = {"role": "assistant", "content": answer_for(adapter.template, target)}
    return {"messages": [*rendered.messages, answer]}, rendered.truncated_tokens


@dataclass(frozen=True)
class LabelledPairs:
    """(premise, hypothesis, target) triples recovered from fine-tuning examples."""

    premises: list[str]
    hypotheses: list[str]
    targets: list[int]


def read_examples(lines: Iterable[bytes | str], *, where: str) -> LabelledPairs:
    """Recover labelled pairs from fine-tuning JSONL lines (blank lines skipped).

    The pair comes from the last user message (:func:`extract_pair`), the label from the
    assistant's last answer (:func:`parse_verdict`). Raises :class:`InputError` naming
    ``where`` and the line number of the first line that gives neither, and when the data
    lacks one of the two labels.
    """
    pairs = LabelledPairs([], [], [])
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        at = f"{where}:{number}"
        try:
            messages = orjson.loads(raw)["messages"]
            answer = messages[-1]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise InputError(f"{at}: not a {{'messages': [...]}} object") from None
        if not isinstance(answer, dict) or answer.get("role") != "assistant":
            raise InputError(f"{at}: the last message must be the assistant's")
        pair = extract_pair(messages[:-1])
        verdict = parse_verdict(str(answer.get("content", ""))).verdict
        if pair is None or verdict is None:
            raise InputError(f"{at}: no (document, summary) pair or no label found")
        pairs.premises.append(pair[0])
        pairs.hypotheses.append(pair[1])
        pairs.targets.append(int(verdict))
    if len(set(pairs.targets)) < 2:
        raise InputError(f"{where}: the training data needs examples of both labels")
    return pairs


def training_preset(path: Path) -> str | None:
    """The prompt preset the first example of the fine-tuning file ``path`` was rendered with
    (``ft``, ``zero-shot``...), or None for a custom template or an unreadable file: what
    ``--prompt`` evaluates the trained model with the prompt it learned."""
    try:
        with path.open("rb") as handle:
            line = next((raw for raw in handle if raw.strip()), b"")
        messages = orjson.loads(line)["messages"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return preset_for(messages[:-1]) if isinstance(messages, list) else None
