"""The ``openai`` provider: any OpenAI-compatible chat completions server.

vLLM, llama.cpp's server, TGI and Ollama host the same open-weight judges as Mistral's API
and speak OpenAI's chat completions format. The provider is the ``mistral`` provider's
``http`` transport in the :data:`~batchjudge.adapters.mistral.OPENAI` dialect: the key comes
from ``OPENAI_API_KEY`` (or ``--api-key-env NAME``), the seed travels as ``seed`` and no
Mistral-only field is sent (a server that checks its arguments, like OpenAI's, refuses
``random_seed``). Everything else — the lean client, the reply check, the translation of
failures, the rate-limit headers the engine learns from — is the same code.
"""

from __future__ import annotations

from batchjudge.adapters.mistral import OPENAI, Dialect
from batchjudge.engine.providers.mistral import DEFAULT_TRANSPORT, MistralProvider

__all__ = ["OpenAIProvider"]


class OpenAIProvider(MistralProvider):
    """Judge requests with a model served at ``base_url`` behind OpenAI's API.

    ``base_url`` defaults to OpenAI's own; point it at the server (``http://127.0.0.1:8000``
    for a local vLLM). Only the ``http`` transport: the official SDK speaks Mistral's API.
    """

    name = "openai"
    dialect: Dialect = OPENAI
    transports: tuple[str, ...] = (DEFAULT_TRANSPORT,)
