"""Prompt templates and the adapter that turns one row into chat messages.

Three presets reproduce the prompts of the Mistral + W&B cookbook "fine-tune an LLM judge to
detect hallucination" (``third_party/wandb/02_finetune_and_eval.ipynb``, Thomas Capelle),
character for character:

- ``zero-shot`` (default): the task, asking for JSON with ``consistency`` (0/1) and ``reason``;
- ``few-shot``: the same with Eugene Yan's Isle of Wight chain-ferry example;
- ``ft``: the short prompt the cookbook used to query its fine-tuned models (JSON with
  ``consistency`` only).

The cookbook sent every prompt with ``response_format={"type": "json_object"}``; so do the
presets. A template can also come from a file (see :func:`load_prompt`).

Every preset renders as ``...Document: \\n{premise}\\nSummary: \\n{hypothesis}\\n``: the
premise sits between the last ``Document: \\n`` and the last ``\\nSummary: \\n``, so
:func:`extract_pair` recovers the pair exactly unless the *hypothesis* itself contains
``\\nSummary: \\n`` (a document may contain it freely).
"""

from __future__ import annotations

import hashlib
import math
import re
import string
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from batchjudge.adapters.tokens import (
    context_window,
    count_chat_tokens,
    count_tokens,
    tokenizer_family,
    truncate_to_tokens,
)
from batchjudge.core.types import Message
from batchjudge.errors import ConfigError, InputError

__all__ = [
    "DEFAULT_PRESET",
    "JSON_OBJECT",
    "JSON_SCHEMA",
    "PRESETS",
    "PromptAdapter",
    "PromptTemplate",
    "RenderedPrompt",
    "extract_pair",
    "load_prompt",
    "preset_for",
]

JSON_OBJECT: dict[str, Any] = {"type": "json_object"}
"""JSON mode: the model must answer one JSON object (what the cookbook used)."""

JSON_SCHEMA: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "consistency_verdict",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "consistency": {"type": "integer", "enum": [0, 1]},
                "reason": {"type": "string"},
            },
            "required": ["consistency", "reason"],
            "additionalProperties": False,
        },
    },
}
"""Structured output: ``consistency`` constrained to 0/1 plus a ``reason`` string."""

_REQUIRED_FIELDS = ("premise", "hypothesis")


@dataclass(frozen=True)
class PromptTemplate:
    """A judge prompt: the user message template plus optional system prompt and examples.

    ``user`` is a ``str.format`` template with the fields ``{premise}`` and ``{hypothesis}``
    (other row fields are allowed and must then be passed to :meth:`PromptAdapter.render`);
    literal braces are doubled. ``few_shot`` messages go between the system prompt and the
    rendered user message. ``response_format`` is sent as is (``JSON_OBJECT``, ``JSON_SCHEMA``
    or ``None`` for free text).
    """

    name: str
    user: str
    system: str | None = None
    few_shot: tuple[Message, ...] = ()
    response_format: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        fields = _template_fields(self.user, where=f"prompt {self.name!r}: user")
        missing = [f for f in _REQUIRED_FIELDS if f not in fields]
        if missing:
            raise ConfigError(
                f"prompt {self.name!r}: user template lacks "
                + ", ".join("{" + f + "}" for f in missing)
            )
        for i, message in enumerate(self.few_shot):
            if message.get("role") not in ("user", "assistant") or not isinstance(
                message.get("content"), str
            ):
                raise ConfigError(
                    f"prompt {self.name!r}: few_shot[{i}] needs role user|assistant and a "
                    "string content"
                )


def _template_fields(template: str, *, where: str) -> tuple[str, ...]:
    """Field names of a ``str.format`` template; ConfigError on a malformed one."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"{where}: malformed template ({exc}); write a literal brace doubled, {{{{ or }}}}"
        ) from exc
    names: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ConfigError(f"{where}: {_brace_hint(name, spec, conversion)}")
        names.append(name)
    return tuple(names)


def _brace_hint(name: str, spec: str | None, conversion: str | None) -> str:
    """Why ``{name...}`` is refused, and the doubled-brace spelling that would keep it as text
    (the usual cause: a JSON example such as ``{"consistency": 1}`` pasted into a template)."""
    text = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
    return (
        f"{{{text}}} is not a field like {{premise}}; to keep braces as text (a JSON example, "
        f"say) double them: {{{{{text}}}}}"
    )


# --- the cookbook's three prompts -------------------------------------------------------------

_TASK = """You are an expert to detect factual inconsistencies and hallucinations. You will be given a document and a summary.
- Carefully read the full document and the provided summary.
- Identify Factual Inconsistencies: any statements in the summary that are not supported by or contradict the information in the document.
Factually Inconsistent: If any statement in the summary is not supported by or contradicts the document, label it as 0
Factually Consistent: If all statements in the summary are supported by the document, label it as 1
"""

_HIGHLIGHT = """Highlight or list the specific statements in the summary that are inconsistent.
Provide a brief explanation of why each highlighted statement is inconsistent with the document.
"""

_FERRY_EXAMPLE = """Here you have an example:

Document: 
Vehicles and pedestrians will now embark and disembark the Cowes ferry separately following Maritime and Coastguard Agency (MCA) guidance. 
Isle of Wight Council said its new procedures were in response to a resident’s complaint. Councillor Shirley Smart said it would 
“initially result in a slower service”. Originally passengers and vehicles boarded or disembarked the so-called “floating bridge” at the same time. 
Ms Smart, who is the executive member for economy and tourism, said the council already had measures in place to control how passengers 
and vehicles left or embarked the chain ferry “in a safe manner”. However, it was “responding” to the MCA’s recommendations “following this 
complaint”. She added: “This may initially result in a slower service while the measures are introduced and our customers get used to 
the changes.” The service has been in operation since 1859.

Inconsistent summary: A new service on the Isle of Wight’s chain ferry has been launched following a complaint from a resident.

Consistent summary: Passengers using a chain ferry have been warned crossing times will be longer because of new safety measures.
"""

_PAIR = """Document: 
{premise}
Summary: 
{hypothesis}
"""

PRESETS: Mapping[str, PromptTemplate] = MappingProxyType(
    {
        "zero-shot": PromptTemplate(
            name="zero-shot",
            user=_TASK
            + "\n"
            + _HIGHLIGHT
            + "\nReturn in JSON format with `consistency` and a `reason` for the given choice.\n\n"
            + _PAIR,
            response_format=JSON_OBJECT,
        ),
        "few-shot": PromptTemplate(
            name="few-shot",
            user=_TASK
            + "\n"
            + _FERRY_EXAMPLE
            + "\n"
            + _HIGHLIGHT
            + "\nReturn in JSON format with `consistency` and a `reason` for the given choice.\n\n"
            + _PAIR,
            response_format=JSON_OBJECT,
        ),
        "ft": PromptTemplate(
            name="ft",
            user=_TASK + "\nReturn in JSON format with `consistency` for the given choice.\n\n" + _PAIR,
            response_format=JSON_OBJECT,
        ),
    }
)
"""The cookbook's prompts by name."""

DEFAULT_PRESET = "zero-shot"


# --- templates from files ---------------------------------------------------------------------

_FILE_KEYS = frozenset({"name", "user", "system", "few_shot", "response_format"})


def load_prompt(spec: str | Path) -> PromptTemplate:
    """A preset by name, or a template read from a file.

    File formats: ``.txt`` (or any non-TOML file) is the user template itself, sent without a
    response format; ``.toml`` has the keys ``user`` (required), ``system``, ``name``,
    ``few_shot`` (an array of tables with ``role`` and ``content``) and ``response_format``
    (``"text"``, the default, ``"json_object"``, ``"json_schema"``, or a table sent as is).
    Raises ConfigError naming the file and field.
    """
    key = str(spec)
    if key in PRESETS:
        return PRESETS[key]
    path = Path(key)
    if not path.is_file():
        raise ConfigError(
            f"prompt {key!r} is neither a preset ({', '.join(PRESETS)}) nor a readable file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read prompt file ({exc})") from exc
    try:
        if path.suffix.lower() != ".toml":
            return PromptTemplate(name=path.stem, user=text)
        return _template_from_toml(path, text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _template_from_toml(path: Path, text: str) -> PromptTemplate:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(_FILE_KEYS))})"
        )
    user = data.get("user")
    if not isinstance(user, str):
        raise ConfigError("field 'user' is required and must be a string")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigError("field 'system' must be a string")
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise ConfigError("field 'name' must be a string")
    few_shot_raw = data.get("few_shot", [])
    if not isinstance(few_shot_raw, list) or not all(isinstance(m, dict) for m in few_shot_raw):
        raise ConfigError("field 'few_shot' must be an array of {role, content} tables")
    few_shot = tuple(
        {"role": str(m.get("role", "")), "content": m.get("content")} for m in few_shot_raw
    )
    return PromptTemplate(
        name=name,
        user=user,
        system=system,
        few_shot=few_shot,  # roles and contents are checked in __post_init__
        response_format=_response_format(data.get("response_format", "text")),
    )


def _response_format(value: object) -> dict[str, Any] | None:
    if isinstance(value, dict):
        if value.get("type") not in ("json_object", "json_schema", "text"):
            raise ConfigError("field 'response_format': type must be json_object|json_schema|text")
        return value
    shorthands: dict[str, dict[str, Any] | None] = {
        "json_object": JSON_OBJECT,
        "json_schema": JSON_SCHEMA,
        "text": None,
    }
    if isinstance(value, str) and value in shorthands:
        return shorthands[value]
    raise ConfigError("field 'response_format' must be json_object, json_schema, text or a table")


# --- rendering --------------------------------------------------------------------------------


_MARKUP_TOKENS_PER_MESSAGE = 16
"""A generous bound on chat markup ([INST], BOS, role tokens) per message."""


@dataclass(frozen=True)
class RenderedPrompt:
    """The messages for one row and what they cost."""

    messages: list[Message]
    prompt_tokens: int
    """Exact (mistral-common) when the adapter counts tokens, else ``ceil(chars / 4)``."""
    truncated_tokens: int = 0
    """Document tokens cut so that prompt plus answer fit the model's context."""


@dataclass
class PromptAdapter:
    """Renders rows with one template for one model, cutting documents to fit the context.

    With ``count_tokens=False`` the tokenizer is never touched (the local provider judges a
    million rows and needs no counts): ``prompt_tokens`` is then an estimate and nothing is
    cut. Otherwise the prompt is counted exactly and, when prompt plus ``max_output_tokens``
    would exceed ``max_context_tokens`` (the model's window by default), the premise, and only
    the premise, is cut at a token boundary from its end.
    """

    template: PromptTemplate
    model: str
    count_tokens: bool = field(default=True, kw_only=True)
    max_context_tokens: int | None = field(default=None, kw_only=True)
    max_output_tokens: int = field(default=256, kw_only=True)
    exact_counts: bool = field(default=True, kw_only=True)
    """With ``False``, a prompt whose UTF-8 size alone proves it fits the context is not
    tokenised: its ``prompt_tokens`` is the estimate. The engine asks for exact counts only
    when a tokens-per-minute limit needs them (counting was ~0.1-0.4 ms of a 1 ms budget)."""

    def __post_init__(self) -> None:
        if self.max_context_tokens is None:
            self.max_context_tokens = context_window(self.model)
        if self.max_output_tokens < 0 or self.max_context_tokens <= self.max_output_tokens:
            raise ConfigError(
                f"--max-tokens ({self.max_output_tokens}) must be at least 0 and below {self.model}'s "
                f"context window ({self.max_context_tokens} tokens; max_context_tokens in the library): "
                "lower --max-tokens"
            )
        self._head: list[Message] = []
        if self.template.system:
            self._head.append({"role": "system", "content": self.template.system})
        self._head.extend(dict(m) for m in self.template.few_shot)

    @property
    def prompt_budget(self) -> int:
        """Tokens the prompt may take: the context minus the room kept for the answer."""
        assert self.max_context_tokens is not None
        return self.max_context_tokens - self.max_output_tokens

    def _messages(self, premise: str, hypothesis: str, fields: Mapping[str, str]) -> list[Message]:
        try:
            user = self.template.user.format(premise=premise, hypothesis=hypothesis, **fields)
        except KeyError as exc:
            raise InputError(
                f"prompt {self.template.name!r} needs the row field {exc.args[0]!r}"
            ) from None
        return [*(dict(m) for m in self._head), {"role": "user", "content": user}]

    def render(self, premise: str, hypothesis: str, **fields: str) -> RenderedPrompt:
        """The messages for one row; InputError when even an empty document cannot fit."""
        messages = self._messages(premise, hypothesis, fields)
        if not self.count_tokens:
            chars = sum(len(m["content"]) for m in messages)
            return RenderedPrompt(messages, math.ceil(chars / 4), 0)
        budget = self.prompt_budget
        if not self.exact_counts:
            # every Mistral token covers at least one byte; markup is a few tokens a message
            size = sum(len(m["content"].encode("utf-8")) for m in messages)
            if size + _MARKUP_TOKENS_PER_MESSAGE * len(messages) <= budget:
                return RenderedPrompt(messages, math.ceil(size / 4), 0)
        total = count_chat_tokens(messages, self.model)
        if total <= budget:
            return RenderedPrompt(messages, total, 0)
        premise_tokens = count_tokens(premise, self.model)
        allowed = budget - (total - premise_tokens)
        while True:
            if allowed <= 0:
                raise InputError(
                    f"the prompt without its document takes {total - premise_tokens} tokens; "
                    f"{self.model} leaves {budget} for the prompt"
                )
            cut, _ = truncate_to_tokens(premise, allowed, self.model)
            messages = self._messages(cut, hypothesis, fields)
            total = count_chat_tokens(messages, self.model)
            if total <= budget:
                kept = count_tokens(cut, self.model)
                return RenderedPrompt(messages, total, premise_tokens - kept)
            allowed -= total - budget  # token merges at the seams: cut the overshoot too

    def fingerprint(self) -> str:
        """A stable sha256 of everything that changes what is sent for a given row."""
        payload = {
            "user": self.template.user,
            "system": self.template.system,
            "few_shot": list(self.template.few_shot),
            "response_format": self.template.response_format,
            "truncation": (
                {
                    "tokenizer": tokenizer_family(self.model),
                    "max_context_tokens": self.max_context_tokens,
                    "max_output_tokens": self.max_output_tokens,
                }
                if self.count_tokens
                else None
            ),
        }
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- recovering the pair from rendered messages -----------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """A template split around its two fields: ``head {premise} middle {hypothesis} tail``."""

    head: str
    middle: str
    tail: str


def _frame(template: PromptTemplate) -> _Frame | None:
    parts = list(string.Formatter().parse(template.user))
    names = [name for _, name, _, _ in parts if name is not None]
    if names != ["premise", "hypothesis"]:
        return None  # other fields, repeated or reversed: no fixed frame
    literals = [literal for literal, _, _, _ in parts]
    head, middle = literals[0], literals[1]
    tail = literals[2] if len(literals) > 2 else ""
    return _Frame(head, middle, tail)


_PRESET_FRAMES: tuple[_Frame, ...] = tuple(
    f for f in (_frame(t) for t in PRESETS.values()) if f is not None
)


def preset_for(messages: Sequence[Message]) -> str | None:
    """The preset that rendered ``messages`` (system prompt, examples and the user message's
    frame all match), or None: how a hint names the ``--prompt`` a fine-tuning file was made with."""
    if not messages or messages[-1].get("role") != "user":
        return None
    text = messages[-1].get("content", "")
    for name, template in PRESETS.items():
        frame = _frame(template)
        head = [*([{"role": "system", "content": template.system}] if template.system else []), *template.few_shot]
        if (frame is not None and [dict(m) for m in messages[:-1]] == [dict(m) for m in head]
                and text.startswith(frame.head) and text.endswith(frame.tail)
                and frame.middle in text[len(frame.head):len(text) - len(frame.tail)]):
            return name
    return None

_DOCUMENT_LABEL = re.compile(
    r"^[ \t]*(?:document|premise|context|source|article)[ \t]*:[ \t]*\n?",
    re.IGNORECASE | re.MULTILINE,
)
_SUMMARY_LABEL = re.compile(
    r"\n[ \t]*(?:summary|hypothesis|claim|statement)[ \t]*:[ \t]*\n?", re.IGNORECASE
)


def extract_pair(
    messages: Sequence[Message], templates: Iterable[PromptTemplate] = ()
) -> tuple[str, str] | None:
    """Recover ``(premise, hypothesis)`` from the last user message of a rendered prompt.

    Tries the frames of ``templates`` and of every preset first (exact, even for a document
    that contains "Summary:" lines), then a generic pattern for other templates: the text
    between the last line-leading ``Document:``/``Premise:`` label and the last
    ``Summary:``/``Hypothesis:`` label after it, and the rest. ``None`` when nothing matches.
    """
    text = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), None)
    if text is None:
        return None
    frames = [f for f in (_frame(t) for t in templates) if f is not None]
    for frame in (*frames, *_PRESET_FRAMES):
        if len(text) < len(frame.head) + len(frame.tail) or not (
            text.startswith(frame.head) and text.endswith(frame.tail)
        ):
            continue
        core = text[len(frame.head) : len(text) - len(frame.tail)]
        cut = core.rfind(frame.middle) if frame.middle else -1
        if cut >= 0:
            return core[:cut], core[cut + len(frame.middle) :]
    summaries = list(_SUMMARY_LABEL.finditer(text))
    if not summaries:
        return None
    summary = summaries[-1]
    documents = list(_DOCUMENT_LABEL.finditer(text, 0, summary.start()))
    if not documents:
        return None
    premise = text[documents[-1].end() : summary.start()]
    return premise.strip(), text[summary.end() :].strip()
