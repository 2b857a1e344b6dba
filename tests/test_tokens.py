"""Token counts take the fast path for Tekken and still equal mistral-common's own encoding."""

from __future__ import annotations

import pytest

from batchjudge.adapters import tokens


@pytest.mark.parametrize("text", ["", "Hello world.", "Le conseil a approuvé 47 logements à Leeds — 🏠 " * 40])
@pytest.mark.parametrize("model", ["mistral-small-latest", "open-mistral-7b"])
def test_count_tokens_equals_the_length_of_the_full_encoding(text, model):
    expected = len(tokens._encode(text, model)) if text else 0
    assert tokens.count_tokens(text, model) == expected


def test_without_exact_counts_a_prompt_that_surely_fits_is_not_tokenised(monkeypatch):
    from batchjudge.adapters.prompts import PRESETS, PromptAdapter

    adapter = PromptAdapter(PRESETS["zero-shot"], "mistral-small-latest", exact_counts=False)
    calls = []
    monkeypatch.setattr("batchjudge.adapters.prompts.count_chat_tokens", lambda *a: calls.append(a) or 0)
    rendered = adapter.render("A short document.", "A summary.")
    assert calls == [] and rendered.truncated_tokens == 0 and rendered.prompt_tokens > 0


def test_without_exact_counts_a_long_document_is_still_cut_with_exact_counts():
    from batchjudge.adapters.prompts import PRESETS, PromptAdapter

    adapter = PromptAdapter(PRESETS["zero-shot"], "mistral-small-latest", exact_counts=False,
                            max_context_tokens=600, max_output_tokens=100)
    rendered = adapter.render("word " * 2000, "A summary.")
    assert rendered.truncated_tokens > 0 and rendered.prompt_tokens <= 500
