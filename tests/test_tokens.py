"""Token counts take the fast path for Tekken and still equal mistral-common's own encoding."""

from __future__ import annotations

import pytest

from batchjudge.adapters import tokens


@pytest.mark.parametrize("text", ["", "Hello world.", "Le conseil a approuvé 47 logements à Leeds — 🏠 " * 40])
@pytest.mark.parametrize("model", ["mistral-small-latest", "open-mistral-7b"])
def test_count_tokens_equals_the_length_of_the_full_encoding(text, model):
    expected = len(tokens._encode(text, model)) if text else 0
    assert tokens.count_tokens(text, model) == expected
