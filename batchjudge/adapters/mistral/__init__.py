"""The one client module for Mistral's API (and OpenAI-compatible servers): chat, files,
batch jobs and fine-tuning.

- :class:`ApiClient` (``_client``): one key rule, one base-URL rule, one ``aiohttp`` session
  per event loop, one translation of failures into the package's errors.
- :class:`SdkChat` (``_sdk``): chat through the official ``mistralai`` SDK with the same
  settings and translation (``--transport sdk``; the reference in tests).
- ``_wire``: the wire format (request body, reply check, ``Retry-After``, status → error)
  and the :class:`Dialect` that tells Mistral's API from an OpenAI-compatible one.
- ``_settings``: the key and base-URL rules.

Nothing here retries or sleeps: the engine does. Importing this package does not import
``aiohttp`` or the SDK; they load on first use.
"""

from batchjudge.adapters.mistral._client import DEFAULT_MAX_REPLY_BYTES, ApiClient, HttpReply
from batchjudge.adapters.mistral._sdk import SdkChat
from batchjudge.adapters.mistral._settings import is_loopback, normalise_base_url, resolve_api_key, split_base_url
from batchjudge.adapters.mistral._wire import (
    EMULATOR_HEADER,
    MISTRAL,
    OPENAI,
    Dialect,
    error_for_status,
    kept_headers,
    reply_from_parts,
    reply_from_payload,
    request_body,
    retry_after,
)

__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "EMULATOR_HEADER",
    "MISTRAL",
    "OPENAI",
    "ApiClient",
    "Dialect",
    "HttpReply",
    "SdkChat",
    "error_for_status",
    "is_loopback",
    "kept_headers",
    "normalise_base_url",
    "reply_from_parts",
    "reply_from_payload",
    "request_body",
    "resolve_api_key",
    "retry_after",
    "split_base_url",
]
