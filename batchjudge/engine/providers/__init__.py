"""Provider registry: lazy factories, so a provider's SDK is imported only when used.

Each provider is one module implementing :class:`batchjudge.core.types.Provider`; the
engine asks for one by name and never imports a concrete provider itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchjudge.core.types import Provider
from batchjudge.errors import ConfigError

__all__ = ["make_provider", "provider_names"]


def _local(**options: Any) -> Provider:
    from batchjudge.engine.providers.local import LocalProvider

    return LocalProvider(model=options["model"])


def _remote(options: dict[str, Any]) -> dict[str, Any]:
    """The options every provider speaking to a server takes."""
    return {
        "model": options["model"],
        "api_key": options.get("api_key"),
        "api_key_env": options.get("api_key_env"),
        "base_url": options.get("base_url"),
        "concurrency": options.get("concurrency", 16),
        "timeout": options.get("timeout", 60.0),
        "allow_insecure_http": options.get("allow_insecure_http", False),
    }


def _mistral(**options: Any) -> Provider:
    from batchjudge.engine.providers.mistral import MistralProvider

    return MistralProvider(transport=options.get("transport"), **_remote(options))


def _openai(**options: Any) -> Provider:
    from batchjudge.engine.providers.openai import OpenAIProvider

    return OpenAIProvider(transport=options.get("transport"), **_remote(options))


_FACTORIES: dict[str, Callable[..., Provider]] = {"local": _local, "mistral": _mistral, "openai": _openai}


def provider_names() -> list[str]:
    """The names ``--provider`` accepts."""
    return sorted(_FACTORIES)


def make_provider(name: str, **options: Any) -> Provider:
    """Build the provider called ``name`` with its options (``model``, ``api_key``, ...)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r} (known: {', '.join(provider_names())})") from None
    return factory(**options)
