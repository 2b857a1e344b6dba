"""The scrubber against every encoding of a key that an HTTP client or server may write.

A key echoed as is, in its header line, base64-encoded inside any longer string (the key at
any byte offset, either alphabet, padded or not), percent-encoded or JSON-escaped never
survives scrubbing, whatever text surrounds it; text without the key comes back exactly as the
scrubber would return it without knowing the key. Survival is judged by
:func:`secret_forms.leaks`, which decodes instead of pattern-matching.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from batchjudge.core.scrub import MIN_SECRET_LEN, REDACTED, Scrubber
from secret_forms import echoes, leaks

KEY = "sk-scrub/7f3a+9c2e81d4b6055e1a_Q"
KEYS = st.text(st.sampled_from("abcdefXYZ0123456789-_./+=~:"), min_size=MIN_SECRET_LEN, max_size=48)
"""What API keys are made of (letters, digits and the punctuation of token alphabets)."""
AROUND = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
BASE64ISH = st.text(st.sampled_from("QmVhcmVyIHNrLXNlbnRpbmVs+/=-_%2F\\u00 :"), max_size=60)
"""Text that looks like base64, percent-encoding and JSON escapes without being the key's."""


def _percent_every_char(text: str) -> str:
    return "".join(f"%{b:02x}" for b in text.encode())


def _json_every_char(text: str) -> str:
    return "".join(f"\\u{ord(c):04X}" if ord(c) < 0x10000 else json.dumps(c)[1:-1] for c in text)


ENCODERS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64 unpadded": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "urlsafe base64": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "urlsafe base64 unpadded": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    "percent": lambda s: quote(s, safe=""),
    "percent, unreserved kept": lambda s: quote(s, safe="/:"),
    "percent every char": _percent_every_char,
    "JSON": lambda s: json.dumps(s)[1:-1],
    "JSON ascii, slashes escaped": lambda s: json.dumps(s, ensure_ascii=True)[1:-1].replace("/", "\\/"),
    "JSON every char": _json_every_char,
    "base64 in a URL": lambda s: quote(base64.b64encode(s.encode()).decode(), safe=""),
    "base64 in JSON": lambda s: base64.b64encode(s.encode()).decode().replace("/", "\\/"),
    "JSON in JSON": lambda s: json.dumps(json.dumps({"detail": _json_every_char(s)})),
}


@pytest.mark.parametrize("name", list(echoes(KEY)))
def test_every_echo_of_the_key_is_scrubbed(name: str) -> None:
    text = f'{{"model": "{echoes(KEY)[name]}", "detail": "rejected"}}'
    assert leaks(text, KEY)  # the echo really carries the key
    scrubbed = Scrubber([KEY]).text(text)
    assert not leaks(scrubbed, KEY), scrubbed
    assert REDACTED in scrubbed


@pytest.mark.parametrize("name", ["percent every char lower", "JSON every char upper", "JSON slashes base64"])
def test_an_escaped_key_is_replaced_where_it_is_and_its_neighbours_kept(name: str) -> None:
    scrubbed = Scrubber([KEY]).text(f'{{"model": "{echoes(KEY)[name]}", "detail": "rejected"}}')
    assert scrubbed.startswith('{"model": "') and scrubbed.endswith('", "detail": "rejected"}')


def test_a_base64_token_holding_the_key_is_replaced_whole_and_its_neighbours_kept() -> None:
    token = base64.b64encode(f"Authorization: Bearer {KEY}".encode()).decode()
    assert Scrubber([KEY]).text(f"x {token}, y") == f"x {REDACTED}, y"


@settings(max_examples=200, deadline=None)
@given(key=KEYS, before=AROUND, after=AROUND, outside=st.tuples(AROUND, AROUND),
       encoding=st.sampled_from(sorted(ENCODERS)))
@example(key=KEY, before="Bearer ", after="", outside=("", ""), encoding="base64")
@example(key=KEY, before="Authorization: Bearer ", after="\r\n", outside=("[", "]"), encoding="urlsafe base64")
def test_the_key_in_any_encoding_of_any_surrounding_text_never_survives(
    key: str, before: str, after: str, outside: tuple[str, str], encoding: str
) -> None:
    """``before`` puts the key at a random offset of the encoded string; ``outside`` is text
    around the encoding, which may run into it (base64 letters next to the token)."""
    text = f"{outside[0]}{ENCODERS[encoding](f'{before}{key}{after}')}{outside[1]}"
    assert not leaks(Scrubber([key]).text(text), key)


@settings(max_examples=120, deadline=None)
@given(key=KEYS, text=AROUND | BASE64ISH)
def test_text_without_the_key_comes_back_as_if_the_key_were_unknown(key: str, text: str) -> None:
    """Knowing a key changes nothing but the key: no base64 token, escape or word nearby."""
    if leaks(text, key):
        return  # the random text happens to hold the key
    assert Scrubber([key]).text(text) == Scrubber().text(text)


@settings(max_examples=120, deadline=None)
@given(key=KEYS, text=AROUND | BASE64ISH | st.text(st.characters(codec="ascii"), max_size=80))
def test_text_holding_no_needle_comes_back_unchanged(key: str, text: str) -> None:
    """The contract of ``Scrubber.needles`` that the report's vectorised pre-check relies on."""
    scrubber = Scrubber([key])
    if any(needle.lower() in text.lower() for needle in scrubber.needles):
        return
    assert scrubber.text(text) == text


@pytest.mark.parametrize("text", [
    "The ring bearer Christopher kept the key under 50% of the time.",
    'He said \\"yes\\" to the 3/4 plan: see https://example.com/a%20b',
    "QmVhcmVyIHNrLXNlbnRpbmVs and dGhlIGNhdA== are base64 of something else",
])  # fmt: skip
def test_ordinary_text_comes_back_unchanged(text: str) -> None:
    assert Scrubber([KEY]).text(text) == text
