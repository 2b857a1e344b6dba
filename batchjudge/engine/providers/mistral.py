"""The ``mistral`` provider: Mistral chat completions over one of two transports.

- ``http`` (default): :meth:`ApiClient.chat <batchjudge.adapters.mistral.ApiClient.chat>`,
  the wire format on an ``aiohttp`` session with ``orjson`` bodies, the reply checked against
  the schema. About 1 ms of client CPU per request, which is what lets one core keep up with
  a 400 RPS limit.
- ``sdk``: the official ``mistralai`` client (:class:`~batchjudge.adapters.mistral.SdkChat`),
  its own retries off. 12–26 ms of CPU per request; the reference the ``http`` transport is
  tested against.

Both send the same body, keep the same rate-limit headers, and translate failures the same
way (:mod:`batchjudge.adapters.mistral`): 429 → RateLimitError with the reply's wait, 5xx/408,
timeouts, dropped connections and garbled replies → TransientError, no connection at all →
UnreachableError, 401/403 → AuthError (stops the run), other 4xx → BadRequestError (fails the
row). The provider never retries and never sleeps: the engine does. The API key is never part
of any message, log or repr.
"""

from __future__ import annotations

from typing import Literal

from batchjudge.adapters.mistral import MISTRAL, ApiClient, Dialect, SdkChat, request_body
from batchjudge.core.types import JudgeReply, JudgeRequest, ProviderBase
from batchjudge.errors import ConfigError

__all__ = ["DEFAULT_TRANSPORT", "TRANSPORTS", "MistralProvider"]

TRANSPORTS: tuple[str, ...] = ("http", "sdk")
DEFAULT_TRANSPORT: Literal["http"] = "http"


class MistralProvider(ProviderBase):
    """Judge requests with a Mistral chat model (or anything speaking its API at ``base_url``).

    ``api_key`` ``None`` reads ``MISTRAL_API_KEY`` (or the variable ``api_key_env`` names);
    without a key construction fails with
    :class:`~batchjudge.errors.AuthError`. ``transport`` is ``"http"`` (default) or ``"sdk"``;
    ``concurrency`` sizes the connection pool; ``timeout`` (seconds) bounds each call.
    """

    name = "mistral"
    dialect: Dialect = MISTRAL
    transports: tuple[str, ...] = TRANSPORTS
    """The transports this provider offers (the SDK speaks only Mistral's API)."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        api_key_env: str | None = None,
        base_url: str | None = None,
        transport: str | None = None,
        concurrency: int = 16,
        timeout: float = 60.0,
        allow_insecure_http: bool = False,
    ) -> None:
        kind = transport or DEFAULT_TRANSPORT
        if kind not in self.transports:
            raise ConfigError(f"--transport {kind!r} is not one of {', '.join(self.transports)} "
                              f"for --provider {self.name}")
        if concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if timeout <= 0:
            raise ConfigError("--timeout must be positive")
        self.model = model
        self.transport = kind
        self.api = ApiClient(
            dialect=self.dialect, api_key=api_key, api_key_env=api_key_env, base_url=base_url,
            allow_insecure_http=allow_insecure_http, concurrency=concurrency, timeout=timeout,
        )
        self.base_url = self.api.base_url
        self._sdk = SdkChat(self.api) if kind == "sdk" else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r}, "
            f"transport={self.transport!r})"
        )

    async def judge(self, request: JudgeRequest) -> JudgeReply:
        """One chat completion; raises a batchjudge ProviderError on failure."""
        body = request_body(request, self.model, self.dialect)
        if self._sdk is not None:
            return await self._sdk.chat(body)
        return await self.api.chat(body)

    async def aclose(self) -> None:
        """Close the connection pools of the current event loop."""
        if self._sdk is not None:
            await self._sdk.aclose()
        await self.api.aclose()
