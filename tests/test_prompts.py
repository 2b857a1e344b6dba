"""Prompt presets, templates from files, rendering, truncation and token counts."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from batchjudge.adapters.prompts import (
    DEFAULT_PRESET,
    JSON_OBJECT,
    JSON_SCHEMA,
    PRESETS,
    PromptAdapter,
    PromptTemplate,
    extract_pair,
    load_prompt,
    preset_for,
)
from batchjudge.adapters.tokens import (
    base_model,
    context_window,
    count_chat_tokens,
    count_tokens,
    tokenizer_family,
    truncate_to_tokens,
)
from batchjudge.errors import ConfigError, InputError

PREMISE = (
    "The council said the ferry would run every 30 minutes from Monday. "
    "Councillor Shirley Smart said the change followed a complaint.\n"
    "Summary: \nthis line is part of the document, not the summary."
)
HYPOTHESIS = "The ferry will run every 30 minutes."


def test_the_three_cookbook_presets_exist_and_zero_shot_is_the_default() -> None:
    assert set(PRESETS) == {"zero-shot", "few-shot", "ft"}
    assert DEFAULT_PRESET == "zero-shot"
    assert load_prompt("few-shot") is PRESETS["few-shot"]


def test_presets_reproduce_the_cookbook_wording() -> None:
    zero, few, ft = PRESETS["zero-shot"].user, PRESETS["few-shot"].user, PRESETS["ft"].user
    assert zero.startswith("You are an expert to detect factual inconsistencies and hallucinations.")
    assert "Return in JSON format with `consistency` and a `reason` for the given choice." in zero
    assert "Isle of Wight Council said its new procedures" in few
    assert "Consistent summary: Passengers using a chain ferry" in few
    assert "Return in JSON format with `consistency` for the given choice." in ft
    assert "Highlight" not in ft
    for text in (zero, few, ft):
        assert text.endswith("Document: \n{premise}\nSummary: \n{hypothesis}\n")
    assert all(t.response_format == JSON_OBJECT for t in PRESETS.values())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_extract_pair_recovers_the_exact_pair_from_every_preset(preset: str) -> None:
    adapter = PromptAdapter(PRESETS[preset], "open-mistral-7b", count_tokens=False)
    rendered = adapter.render(PREMISE, HYPOTHESIS)
    assert extract_pair(rendered.messages) == (PREMISE, HYPOTHESIS)


def test_extract_pair_reads_the_last_user_message_after_few_shot_examples() -> None:
    template = PromptTemplate(
        name="custom",
        user="Premise:\n{premise}\nHypothesis:\n{hypothesis}",
        system="Be strict.",
        few_shot=(
            {"role": "user", "content": "Premise:\nA\nHypothesis:\nB"},
            {"role": "assistant", "content": '{"consistency": 0}'},
        ),
    )
    messages = PromptAdapter(template, "open-mistral-7b", count_tokens=False).render(
        "the cat sat", "a cat sat"
    ).messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert extract_pair(messages, [template]) == ("the cat sat", "a cat sat")
    assert extract_pair(messages) == ("the cat sat", "a cat sat")  # generic labels


def test_extract_pair_returns_none_for_unrelated_messages() -> None:
    assert extract_pair([{"role": "user", "content": "hello"}]) is None
    assert extract_pair([{"role": "system", "content": "Document: a\nSummary: b"}]) is None


def test_render_without_counting_estimates_a_quarter_token_per_character() -> None:
    adapter = PromptAdapter(PRESETS["ft"], "open-mistral-7b", count_tokens=False)
    rendered = adapter.render("x" * 400, "y")
    chars = len(rendered.messages[0]["content"])
    assert rendered.prompt_tokens == -(-chars // 4)
    assert rendered.truncated_tokens == 0


def test_render_counts_exact_chat_tokens_with_mistral_common() -> None:
    adapter = PromptAdapter(PRESETS["zero-shot"], "open-mistral-7b")
    rendered = adapter.render(PREMISE, HYPOTHESIS)
    assert rendered.prompt_tokens == _reference_count(rendered.messages, "v3")
    assert rendered.truncated_tokens == 0


def test_a_document_too_long_for_the_context_is_cut_to_fit_and_the_cut_is_recorded() -> None:
    premise = "The quick brown fox jumps over the lazy dog near the river bank. " * 200
    adapter = PromptAdapter(
        PRESETS["zero-shot"], "open-mistral-7b", max_context_tokens=1024, max_output_tokens=128
    )
    rendered = adapter.render(premise, HYPOTHESIS)
    assert rendered.prompt_tokens <= 1024 - 128
    assert rendered.prompt_tokens >= 1024 - 128 - 8  # the budget is used, not wasted
    kept_premise, hypothesis = extract_pair(rendered.messages) or ("", "")
    assert hypothesis == HYPOTHESIS
    assert premise.startswith(kept_premise)
    total = count_tokens(premise, "open-mistral-7b")
    assert rendered.truncated_tokens == total - count_tokens(kept_premise, "open-mistral-7b")
    assert rendered.truncated_tokens > 0


def test_a_prompt_that_cannot_fit_even_without_its_document_is_an_input_error() -> None:
    adapter = PromptAdapter(
        PRESETS["few-shot"], "open-mistral-7b", max_context_tokens=200, max_output_tokens=50
    )
    with pytest.raises(InputError, match="tokens"):
        adapter.render(PREMISE, HYPOTHESIS)


def test_fingerprint_is_stable_and_changes_with_what_is_sent() -> None:
    a = PromptAdapter(PRESETS["zero-shot"], "open-mistral-7b")
    assert a.fingerprint() == PromptAdapter(PRESETS["zero-shot"], "open-mistral-7b").fingerprint()
    others = {
        PromptAdapter(PRESETS["few-shot"], "open-mistral-7b").fingerprint(),
        PromptAdapter(PRESETS["zero-shot"], "open-mistral-7b", max_output_tokens=64).fingerprint(),
        PromptAdapter(PRESETS["zero-shot"], "open-mistral-nemo").fingerprint(),
        PromptAdapter(
            PromptTemplate("z", PRESETS["zero-shot"].user, response_format=JSON_SCHEMA),
            "open-mistral-7b",
        ).fingerprint(),
    }
    assert a.fingerprint() not in others and len(others) == 4


def test_extra_row_fields_are_rendered_and_a_missing_one_is_an_input_error() -> None:
    template = PromptTemplate("t", "{topic}: {premise} / {hypothesis}")
    adapter = PromptAdapter(template, "open-mistral-7b", count_tokens=False)
    assert adapter.render("p", "h", topic="news").messages[-1]["content"] == "news: p / h"
    with pytest.raises(InputError, match="topic"):
        adapter.render("p", "h")


def test_a_template_without_premise_or_hypothesis_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\{hypothesis\}"):
        PromptTemplate("bad", "Document: {premise}")


def test_load_prompt_reads_a_plain_text_template(tmp_path: Path) -> None:
    path = tmp_path / "judge.txt"
    path.write_text("Doc: {premise}\nClaim: {hypothesis}\nAnswer {{\"consistency\": 0|1}}")
    template = load_prompt(str(path))
    assert template.name == "judge" and template.response_format is None
    text = PromptAdapter(template, "open-mistral-7b", count_tokens=False).render("a", "b")
    assert text.messages[-1]["content"].endswith('Answer {"consistency": 0|1}')


def test_load_prompt_reads_a_toml_template_with_system_examples_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "judge.toml"
    path.write_text(
        'name = "strict"\n'
        'system = "You are strict."\n'
        'user = "Document:\\n{premise}\\nSummary:\\n{hypothesis}"\n'
        'response_format = "json_schema"\n'
        "[[few_shot]]\nrole = \"user\"\ncontent = \"Document:\\nA\\nSummary:\\nB\"\n"
        "[[few_shot]]\nrole = \"assistant\"\ncontent = '{\"consistency\": 0}'\n"
    )
    template = load_prompt(path)
    assert template.name == "strict" and template.system == "You are strict."
    assert template.response_format == JSON_SCHEMA
    assert len(template.few_shot) == 2


def test_a_toml_template_sends_free_text_unless_it_asks_for_json(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text('user = "{premise} / {hypothesis}"\n')
    assert load_prompt(path).response_format is None
    path.write_text('user = "{premise} / {hypothesis}"\nresponse_format = "json_object"\n')
    assert load_prompt(path).response_format == JSON_OBJECT


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('user = "{premise}"\n', r"judge\.toml: .*\{hypothesis\}"),
        ('user = "{premise} {hypothesis}"\ntemperature = 0\n', "unknown field 'temperature'"),
        ('system = "x"\n', "field 'user' is required"),
        ('user = "{premise} {hypothesis}"\nresponse_format = "xml"\n', "response_format"),
        ('user = "{premise} {hypothesis"\n', "malformed template"),
        ("user = \n", "not valid TOML"),
        ('user = "{premise} {hypothesis}"\n[[few_shot]]\nrole = "robot"\ncontent = "x"\n', "few_shot"),
    ],
)
def test_a_bad_template_file_is_a_config_error_naming_the_file_and_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "judge.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_prompt(str(path))
    assert str(path) in str(info.value)


def test_a_json_example_pasted_into_a_template_is_refused_with_the_doubled_brace_spelling(
    tmp_path: Path,
) -> None:
    path = tmp_path / "judge.txt"
    path.write_text('Document: {premise}\nSummary: {hypothesis}\nAnswer like {"consistency": 1}\n')
    with pytest.raises(ConfigError) as info:
        load_prompt(path)
    message = str(info.value)
    assert str(path) in message
    assert '{{"consistency": 1}}' in message and "double" in message
    # Written as the error says, the template loads and renders the braces as text.
    path.write_text('Document: {premise}\nSummary: {hypothesis}\nAnswer like {{"consistency": 1}}\n')
    rendered = PromptAdapter(load_prompt(path), "open-mistral-7b", count_tokens=False).render("D", "S")
    assert rendered.messages[-1]["content"].endswith('Answer like {"consistency": 1}\n')


def test_a_lone_brace_is_refused_with_the_doubling_rule() -> None:
    with pytest.raises(ConfigError, match=r"double.*\{\{ or \}\}"):
        PromptTemplate(name="t", user="{premise} {hypothesis} }")


def test_an_unknown_preset_name_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match="zero-shot"):
        load_prompt("zero_shot")


def test_token_families_follow_the_model_name() -> None:
    assert tokenizer_family("open-mistral-7b") == "v3"
    assert tokenizer_family("ft:open-mistral-7b:abc:20240601:xyz") == "v3"
    assert base_model("ft:open-mistral-7b:abc:20240601:xyz") == "open-mistral-7b"
    assert tokenizer_family("open-mistral-nemo") == "tekken"
    assert tokenizer_family("mistral-large-2402") == "v2"
    assert tokenizer_family("some-future-model") == "tekken"
    assert context_window("open-mistral-7b") == 32_768
    assert context_window("mistral-large-latest") == 131_072


def test_token_counts_are_exact_for_known_sentencepiece_ids() -> None:
    # Three pieces in the v3 vocabulary: ▁The ▁council ▁said.
    assert count_tokens("The council said", "open-mistral-7b") == 3
    assert count_tokens("", "open-mistral-7b") == 0
    # <s> [INST] ▁The ▁council ▁said [/INST]
    chat = [{"role": "user", "content": "The council said"}]
    assert count_chat_tokens(chat, "open-mistral-7b") == 6


def test_truncate_to_tokens_keeps_the_beginning_within_the_limit() -> None:
    text = "one two three four five six seven eight nine ten " * 5
    cut, removed = truncate_to_tokens(text, 7, "open-mistral-7b")
    assert text.startswith(cut) and count_tokens(cut, "open-mistral-7b") <= 7
    assert removed == count_tokens(text, "open-mistral-7b") - count_tokens(cut, "open-mistral-7b")
    assert truncate_to_tokens("short", 10, "open-mistral-7b") == ("short", 0)


@pytest.mark.parametrize("model", ["open-mistral-7b", "open-mistral-nemo"])
def test_a_cut_inside_a_multibyte_character_still_leaves_an_exact_prefix(model: str) -> None:
    text = "Zürich 🚢🛳️ 東京 𝔘𝔫𝔦 " * 10  # characters spread over several byte tokens
    total = count_tokens(text, model)
    for limit in range(60):
        cut, removed = truncate_to_tokens(text, limit, model)
        assert text.startswith(cut) and "\ufffd" not in cut
        assert count_tokens(cut, model) <= limit
        assert removed == total - count_tokens(cut, model)


@pytest.mark.parametrize(
    "model", ["open-mistral-7b", "open-mixtral-8x7b", "mistral-large-2402", "mistral-large-2411",
              "open-mistral-nemo"],
)  # fmt: skip
def test_rendered_prompt_tokens_equal_a_full_chat_encoding_for_every_tokenizer(model: str) -> None:
    documents = [
        PREMISE,
        "  Leading spaces, tabs\tand a trailing newline\n",
        "Zürich – «quotes», emoji 🚢, 東京, numbers 1,234.5 and URLs https://example.org/x?y=1",
        "word " * 300,
    ]
    few_shot = PromptTemplate(
        "fs", "{premise}\n{hypothesis}",
        few_shot=({"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "0"}),
    )  # fmt: skip
    system = PromptTemplate("sys", "{premise}\n{hypothesis}", system="Judge strictly.")
    for template in (*PRESETS.values(), few_shot, system):
        adapter = PromptAdapter(template, model)
        for document in documents:
            rendered = adapter.render(document, HYPOTHESIS)
            expected = _reference_count(rendered.messages, tokenizer_family(model))
            assert rendered.prompt_tokens == expected


@functools.cache
def _reference_tokenizer(family: str) -> Any:
    """mistral-common's tokenizer for ``family``, built independently of batchjudge."""
    import mistral_common
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    data = Path(mistral_common.__file__).parent / "data"
    return {
        "v1": MistralTokenizer.v1, "v2": MistralTokenizer.v2, "v3": MistralTokenizer.v3,
        "v7": MistralTokenizer.v7,
        "tekken": lambda: MistralTokenizer.from_file(str(data / "tekken_240911.json")),
    }[family]()  # fmt: skip


def _reference_count(messages: list[dict[str, str]], family: str) -> int:
    """Tokens by mistral-common's public serving encoder."""
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    tokenizer = _reference_tokenizer(family)
    classes = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
    request = ChatCompletionRequest(messages=[classes[m["role"]](content=m["content"]) for m in messages])
    return len(tokenizer.encode_chat_completion(request).tokens)


@pytest.mark.parametrize(
    "model", ["open-mixtral-8x7b", "mistral-large-2402", "open-mistral-7b", "mistral-large-2411",
              "open-mistral-nemo"],
)  # fmt: skip
def test_chat_token_counts_equal_mistral_commons_own_encoder(model: str) -> None:
    texts = [PREMISE, " leading space", "Zürich 🚢 東京\n\n1,234.5", "a", "trailing\n", "word " * 50]
    conversations = [
        [{"role": "user", "content": t}] for t in texts
    ] + [
        [{"role": "user", "content": a}, {"role": "assistant", "content": b},
         {"role": "user", "content": c}]
        for a, b, c in zip(texts, texts[1:], texts[2:])
    ] + [
        [{"role": "system", "content": "Judge strictly."}, {"role": "user", "content": t}]
        for t in texts
    ] + [
        [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}],
    ]  # fmt: skip
    family = tokenizer_family(model)
    for messages in conversations:
        assert count_chat_tokens(messages, model) == _reference_count(messages, family), messages


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_preset_that_rendered_messages_is_recognised(name: str) -> None:
    rendered = PromptAdapter(PRESETS[name], "mistral-small-latest", count_tokens=False).render(
        "A document about Leeds.\nSummary: not a label.", "A summary.")
    assert preset_for(rendered.messages) == name
    assert preset_for([{"role": "user", "content": "Judge this: A document. Or that: A summary."}]) is None
