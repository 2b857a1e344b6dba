"""The one scrubber: no key, credential header or URL password leaves the process.

Everything that leaves batchjudge goes through it: result columns written to Parquet, CLI
messages, traces and ``run.json``. Users point the engine at servers they do not control,
and a server may echo the request (headers included) into an error body, so three
defences apply to every string:

1. **Known secrets, in any form.** The API key a client was configured with (registered by
   the client with :func:`remember_secret` when it resolves the key) and the value of every
   credential-looking environment variable (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``) are
   replaced wherever they occur: as is, percent-encoded, JSON-escaped, or base64-encoded (the
   form HTTP Basic authentication sends).
2. **Credential headers and fields**, whatever their value: ``Authorization: Bearer …``,
   ``Proxy-Authorization``, ``api-key``/``x-api-key``, in header, JSON or ``repr`` shape.
3. **URL userinfo**: ``https://user:password@host`` keeps its scheme and host only.

Mapping keys that name a credential (``authorization``, ``api_key``, ``password``…) have their
whole value replaced. Values are copied, never mutated.

Library logging goes through it too: :func:`scrubbed_logger` gives a module its logger with a
:class:`ScrubFilter`, which rewrites each record (message, arguments and traceback text)
before any handler, the user's own included, sees it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

__all__ = [
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
_MIN_SECRET_LEN = 8
"""Shorter values are too likely to occur in ordinary text to be replaced safely."""

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


def _is_secret_key(key: str) -> bool:
    normalised = key.lower().replace("-", "_")
    return normalised in _SECRET_KEYS or normalised.endswith("_api_key")


def _forms(secret: str) -> set[str]:
    """The ways a secret may appear in text: raw, percent-encoded, JSON-escaped, base64."""
    forms = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}
    for raw in (secret, f":{secret}", f"{secret}:"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms.add(encoded.rstrip("="))
    return {f for f in forms if len(f) >= _MIN_SECRET_LEN}


class Scrubber:
    """Returns scrubbed copies of strings and JSON-like values; see the module docstring."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: list[str] = []
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
        if not secret or len(secret.strip()) < _MIN_SECRET_LEN or secret in self._added:
            return
        with self._lock:
            self._added.add(secret)
            known = set(self._forms)
            new = _forms(secret.strip()) - known
            # Longest first, so a form that contains another is replaced whole.
            self._forms = sorted(known | new, key=len, reverse=True)

    def text(self, text: str) -> str:
        """``text`` without known secrets, credential header values or URL userinfo."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
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
