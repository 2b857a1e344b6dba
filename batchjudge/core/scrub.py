"""The one scrubber: no key, credential header or URL password leaves the process.

Everything that leaves batchjudge goes through it: result columns written to Parquet, CLI
messages, reports, traces and ``run.json``. Users point the engine at servers they do not
control, and a server may echo the request (headers included) into a reply or an error body,
encoded any way an HTTP client or server encodes text, so three defences apply to every string:

1. **Known secrets, in any encoding.** The API key a client was configured with (registered by
   the client with :func:`remember_secret` when it resolves the key) and the value of every
   credential-looking environment variable (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``) are
   replaced wherever they occur: as is; percent-encoded or JSON-escaped, wholly or char by
   char (``%2D``/``%2d``, ``\\u002d``, ``\\/``); and base64-encoded *inside any longer string*
   (``Bearer <key>``, ``Authorization: Bearer <key>``, HTTP Basic's ``user:<key>``), standard or
   URL-safe alphabet, padded or not. The key's base64 inside a longer encoding depends only on
   where the key starts modulo 3, so for each of the three offsets the scrubber knows the
   encoded middle that no neighbouring byte touches (:func:`_base64_cores`), and replaces the
   whole base64 token holding it.
2. **Credential headers and fields**, whatever their value: ``Authorization: Bearer …``,
   ``Proxy-Authorization``, ``api-key``/``x-api-key``, in header, JSON or ``repr`` shape.
3. **URL userinfo**: ``https://user:password@host`` keeps its scheme and host only.

Secrets shorter than :data:`MIN_SECRET_LEN` are not replaced (they would mangle ordinary text);
the clients refuse such a key for any server not on this machine
(:func:`batchjudge.adapters.mistral.resolve_api_key`). Mapping keys that name a credential
(``authorization``, ``api_key``, ``password``…) have their whole value replaced. Values are
copied, never mutated.

Library logging goes through it too: :func:`scrubbed_logger` gives a module its logger with a
:class:`ScrubFilter`, which rewrites each record (message, arguments and traceback text)
before any handler, the user's own included, sees it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import string
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

__all__ = [
    "MIN_SECRET_LEN",
    "REDACTED",
    "ScrubFilter",
    "Scrubber",
    "default_scrubber",
    "remember_secret",
    "scrub",
    "scrub_text",
    "scrubbed_logger",
]

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 8
"""Shorter secrets are too likely to occur in ordinary text to be replaced safely."""

_SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "api_key",
        "apikey",
        "x_api_key",
        "access_token",
        "password",
        "secret",
    }
)
_SECRET_ENV_SUFFIXES = ("API_KEY", "_TOKEN", "_SECRET")

_QUOTE = r"""["']?"""
_HEADER_VALUE = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization|\b(?:x-)?api[-_]?key)"
    rf"(?P<sep>{_QUOTE}\s*[:=]\s*{_QUOTE}\s*)"
    r"(?P<scheme>(?:bearer|basic|token)\s+)?"
    r"(?P<value>[^\s\"',;}\]]{8,})"
)
"""``Authorization: Bearer x``, ``"api-key": "x"``, ``'authorization': 'Basic x'``, ``api_key=x``."""
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+(?P<value>(?=[\w.~+/=-]*\d)[\w.~+/=-]{16,})")
"""A credential scheme anywhere in free text (``… sent Bearer sk-abc…``): a value of 16 or
more token characters with a digit, so prose ("the ring bearer Christopher") is left alone."""
_USERINFO = re.compile(r"(?i)\b(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/\s@?#]+)@")
"""``scheme://user:password@`` (or ``scheme://token@``) in a URL."""
_SHAPE_NEEDLES = ("://", "auth", "key", "bearer", "basic")
"""What a text must contain (ignoring case) for a credential-shape rule to apply to it."""
_ESCAPES = ("%", "\\")
"""What a text must contain for a percent-encoded or JSON-escaped secret to be in it."""
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|([\"\\/]))")
_MAX_DECODES = 4
"""Percent-decoding and JSON-unescaping rounds tried: JSON in JSON in a URL is three."""

_BASE64_CHARS = frozenset(string.ascii_letters + string.digits + "+/-_")
"""Both alphabets: a token may mix them only if it is not base64, and then it is cut anyway."""
_URLSAFE = str.maketrans("+/", "-_")


def _is_secret_key(key: str) -> bool:
    normalised = key.lower().replace("-", "_")
    return normalised in _SECRET_KEYS or normalised.endswith("_api_key")


def _base64_cores(secret: str) -> set[str]:
    """The base64 text that stands for ``secret`` in the encoding of *any* string holding it.

    Base64 turns each 3 bytes into 4 characters, so the characters for the secret's bytes
    depend on where it starts modulo 3 and, at both ends, on the neighbouring bytes. For each
    of the 3 offsets this is the encoding of the secret without those boundary characters (up
    to three at the start, two at the end: 4/3 of a byte offset, rounded inwards): what every
    string with the secret at that offset encodes it to, in the standard and URL-safe alphabet.
    """
    raw = secret.encode()
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        core = encoded[-(-4 * offset // 3) : 4 * (offset + len(raw)) // 3]
        cores |= {core, core.translate(_URLSAFE)}
    return cores


def _hex(value: int, width: int) -> str:
    """``value`` in hex as a pattern matching upper- and lower-case digits."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}x}")


def _escaped_char(char: str) -> str:
    """A pattern for ``char`` as is, percent-encoded (its UTF-8 bytes) or JSON-escaped."""
    code = ord(char)
    units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + (code & 0x3FF)]
    forms = [
        re.escape(char),
        "".join(f"%{_hex(b, 2)}" for b in char.encode()),
        "".join(rf"\\u{_hex(u, 4)}" for u in units),
    ]
    if char in '"\\/':
        forms.append(re.escape(f"\\{char}"))
    return f"(?:{'|'.join(forms)})"


def _escaped(text: str) -> re.Pattern[str]:
    """``text`` with any of its characters percent-encoded or JSON-escaped (or not)."""
    return re.compile("".join(_escaped_char(c) for c in text))


@dataclass(frozen=True)
class _Known:
    """What a scrubber looks for, derived from its secrets; replaced whole when one is added."""

    secrets: tuple[str, ...] = ()
    """As they are, longest first (so a secret that contains another is replaced whole)."""
    cores: tuple[str, ...] = ()
    """Their base64 cores (:func:`_base64_cores`), longest first."""
    escaped: tuple[re.Pattern[str], ...] = ()
    """Their encoded forms (:func:`_escaped`), and those of cores a URL would encode (``+/``)."""

    @classmethod
    def of(cls, secrets: Iterable[str]) -> _Known:
        plain = sorted(set(secrets), key=len, reverse=True)
        cores = sorted(set().union(*map(_base64_cores, plain)), key=len, reverse=True)
        escaped = [_escaped(s) for s in plain] + [_escaped(c) for c in cores if "+" in c or "/" in c]
        return cls(tuple(plain), tuple(cores), tuple(escaped))

    def hidden_in(self, text: str) -> bool:
        """Whether ``text`` holds a secret (or a base64 core) once its percent-encoding and
        JSON escapes are decoded (again, for text escaped twice): a quick check before
        looking for where."""
        for _ in range(_MAX_DECODES):
            decoded = text
            if "%" in decoded and _PERCENT_ESCAPE.search(decoded):
                decoded = unquote(decoded, errors="replace")
            if "\\" in decoded and _JSON_ESCAPE.search(decoded):
                decoded = _JSON_ESCAPE.sub(_unescape, decoded)
            if decoded == text:
                return False
            if any(s in decoded for s in (*self.secrets, *self.cores)):
                return True
            text = decoded
        return False


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match[1], 16)) if match[1] else match[2]


def _cut_tokens(text: str, core: str) -> str:
    """``text`` with each base64 token that holds ``core`` (padding included) replaced."""
    out: list[str] = []
    done = 0
    found = text.find(core)
    while found >= 0:
        start, end = found, found + len(core)
        while start > done and text[start - 1] in _BASE64_CHARS:
            start -= 1
        while end < len(text) and text[end] in _BASE64_CHARS:
            end += 1
        while end < len(text) and text[end] == "=":
            end += 1
        out += (text[done:start], REDACTED)
        done = end
        found = text.find(core, done)
    return "".join(out) + text[done:]


class Scrubber:
    """Returns scrubbed copies of strings and JSON-like values; see the module docstring."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._known = _Known()
        self._added: set[str] = set()
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Scrubber:
        """A scrubber for the credentials present in ``environ`` (default ``os.environ``)."""
        return cls(_environ_secrets(os.environ if environ is None else environ))

    def add(self, secret: str | None) -> None:
        """Also replace ``secret`` (in every form) from now on; short values are ignored."""
        if not secret or len(secret.strip()) < MIN_SECRET_LEN or secret in self._added:
            return
        with self._lock:
            self._added.add(secret)
            self._known = _Known.of(s.strip() for s in self._added)

    @property
    def needles(self) -> tuple[str, ...]:
        """Strings of which a text holds at least one (compared ignoring ASCII case) whenever
        :meth:`text` would change it: lets a caller with many texts (a report's columns)
        find the few to scrub with one vectorised search."""
        known = self._known
        return (*known.secrets, *known.cores, *_ESCAPES, *_SHAPE_NEEDLES)

    def text(self, text: str) -> str:
        """``text`` without known secrets, credential header values or URL userinfo."""
        known = self._known  # one snapshot: another thread may add a secret meanwhile
        for secret in known.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for core in known.cores:
            if core in text:
                text = _cut_tokens(text, core)
        if known.secrets and ("%" in text or "\\" in text) and known.hidden_in(text):
            for pattern in known.escaped:
                text = pattern.sub(REDACTED, text)
            if known.hidden_in(text):  # encoded some other way (twice, say): keep none of it
                return REDACTED
        if "://" in text and "@" in text:
            text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
        lowered = text.lower()
        if "auth" in lowered or "key" in lowered:
            text = _HEADER_VALUE.sub(_keep_name, text)
        if "bearer" in lowered or "basic" in lowered:
            text = _BEARER.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
        return text

    def __call__(self, value: Any) -> Any:
        """A scrubbed copy of a string, mapping, list or tuple (other values as they are)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                k: REDACTED if isinstance(k, str) and _is_secret_key(k) and value[k] else self(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


def _keep_name(match: re.Match[str]) -> str:
    if match["value"] == REDACTED or match["value"].startswith("["):
        return match[0]
    return f"{match['name']}{match['sep']}{match['scheme'] or ''}{REDACTED}"


_DEFAULT = Scrubber()


def _environ_secrets(environ: Mapping[str, str]) -> list[str]:
    return [v for k, v in environ.items() if k.upper().endswith(_SECRET_ENV_SUFFIXES)]


def default_scrubber() -> Scrubber:
    """The process's scrubber: every remembered secret plus the credentials in the
    environment *now* (read again on each call, so a key set after start-up is covered)."""
    for secret in _environ_secrets(os.environ):
        _DEFAULT.add(secret)
    return _DEFAULT


def remember_secret(secret: str | None) -> None:
    """Register a credential (an API key given as an option, say) with the process's scrubber."""
    default_scrubber().add(secret)


def scrub_text(text: str) -> str:
    """:meth:`Scrubber.text` with the process's scrubber."""
    return default_scrubber().text(text)


def scrub(value: Any) -> Any:
    """A scrubbed copy of ``value`` with the process's scrubber."""
    return default_scrubber()(value)


class ScrubFilter(logging.Filter):
    """Scrubs a log record in place (message with its arguments, traceback text); never drops
    one. Attach it to a logger (records logged on it) or a handler (records it emits)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrubber = default_scrubber()
        record.msg = scrubber.text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrubber.text(record.exc_text)
            record.exc_info = None  # the scrubbed text stands for it
        if record.stack_info:
            record.stack_info = scrubber.text(record.stack_info)
        return True


_FILTER = ScrubFilter()


def scrubbed_logger(name: str) -> logging.Logger:
    """The logger called ``name`` with the process's :class:`ScrubFilter` attached (once)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
