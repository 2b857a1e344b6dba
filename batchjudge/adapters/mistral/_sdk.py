"""Chat completions through the official ``mistralai`` SDK: the reference the lean client is
tested against, and ``--transport sdk``.

It costs 12–26 ms of client CPU per request (the SDK rebuilds pydantic models on every call),
against ~1 ms for :meth:`ApiClient.chat`, so it is never the default. It takes its key, base
URL, pool size and timeout from an :class:`~._client.ApiClient` (the package's one key and
base-URL rule), turns the SDK's retries off (the engine alone retries), keeps the same
rate-limit headers through an ``httpx`` response hook, caps replies like the lean client
(:class:`_CappedTransport`: a reply over the cap fails with
:class:`~batchjudge.errors.ReplyTooLargeError`, the rest unread), and translates failures with
the same :func:`~._wire.error_for_status`. One SDK client per event loop, made on first use.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Mapping
from typing import Any

from batchjudge.adapters.mistral._client import ApiClient
from batchjudge.adapters.mistral._failures import connect_timeout, disconnected, too_large, unreachable
from batchjudge.adapters.mistral._wire import error_for_status, kept_headers, reply_from_parts
from batchjudge.core.types import JudgeReply
from batchjudge.errors import TransientError

__all__ = ["SdkChat"]

_RESPONSE_HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "batchjudge_sdk_response_headers", default=None
)
"""Where the httpx response hook leaves the headers for the awaiting call."""


async def _keep_response_headers(response: Any) -> None:
    sink = _RESPONSE_HEADERS.get()
    if sink is not None:
        sink.update(kept_headers(response.headers))


def _capped_transport(limits: Any, cap: int | None) -> Any:
    """An ``httpx2`` transport whose replies fail with ReplyTooLargeError past ``cap`` bytes
    (declared length or bytes read), without reading the rest; ``None``: no cap."""
    import httpx2

    inner = httpx2.AsyncHTTPTransport(limits=limits)
    if cap is None:
        return inner
    limit: int = cap

    class _CappedStream(httpx2.AsyncByteStream):
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        async def __aiter__(self) -> AsyncIterator[bytes]:
            read = 0
            async for chunk in self._stream:
                read += len(chunk)
                if read > limit:
                    raise too_large("chat completion", limit)
                yield chunk

        async def aclose(self) -> None:
            await self._stream.aclose()

    class _CappedTransport(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: Any) -> Any:
            response = await inner.handle_async_request(request)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                await response.aclose()
                raise too_large("chat completion", limit, int(declared))
            response.stream = _CappedStream(response.stream)
            return response

        async def aclose(self) -> None:
            await inner.aclose()

    return _CappedTransport()


def _before_any_reply(exc: BaseException) -> bool:
    """Whether a transport error lost the connection before any reply (a reset, or a close
    before the status line), not in the middle of one."""
    import httpx2

    if isinstance(exc, (httpx2.ReadError, httpx2.WriteError)):
        return True
    return isinstance(exc, httpx2.RemoteProtocolError) and "without sending a response" in str(exc)


class SdkChat:
    """``client.chat.complete_async`` with the settings of ``api``."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self._sdk: Any = None
        self._http: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._sdk is None or self._loop is not loop:
            import httpx2
            from mistralai.client import Mistral

            size = self._api.concurrency
            limits = httpx2.Limits(max_connections=size, max_keepalive_connections=size)
            self._http = httpx2.AsyncClient(
                transport=_capped_transport(limits, self._api.max_reply_bytes),
                timeout=self._api.timeout,
                event_hooks={"response": [_keep_response_headers]},
            )
            self._sdk = Mistral(
                api_key=self._api.api_key,
                server_url=self._api.base_url,
                async_client=self._http,
                retry_config=None,  # one retry policy: the engine's
                timeout_ms=int(self._api.timeout * 1000),
            )
            self._loop = loop
        return self._sdk

    async def chat(self, body: Mapping[str, Any]) -> JudgeReply:
        """One chat completion; raises the package's ProviderError on failure."""
        import httpx2
        from mistralai.client.errors import MistralError, NoResponseError

        label = self._api.dialect.label
        client = self._client()
        headers: dict[str, str] = {}
        token = _RESPONSE_HEADERS.set(headers)
        try:
            result = await client.chat.complete_async(**body)
        except MistralError as exc:
            if exc.status_code >= 300:
                raise error_for_status(exc.status_code, exc.headers, exc.body, self._api.dialect) from None
            raise TransientError(
                f"malformed reply from {label}: HTTP {exc.status_code}: {exc.message}"
            ) from None
        except httpx2.ConnectTimeout:
            raise connect_timeout("chat completion", self._api.base_url, self._api.timeout) from None
        except httpx2.TimeoutException:
            raise TransientError(f"no reply within {self._api.timeout:g} s (timeout)", timed_out=True) from None
        except httpx2.ConnectError as exc:
            raise unreachable("chat completion", self._api.base_url, str(exc)) from None
        except (httpx2.TransportError, NoResponseError) as exc:
            if _before_any_reply(exc):
                raise disconnected("chat completion", str(exc)) from None
            raise TransientError(f"connection error: {type(exc).__name__}: {exc}") from None
        finally:
            _RESPONSE_HEADERS.reset(token)
        try:
            choice = result.choices[0].message
            usage = result.usage
        except (AttributeError, IndexError, TypeError):
            raise TransientError(f"malformed reply from {label}: no choices") from None
        content = choice.content
        if isinstance(content, list):
            content = [c.model_dump() if hasattr(c, "model_dump") else c for c in content]
        return reply_from_parts(content, usage.prompt_tokens, usage.completion_tokens, result.model, headers)

    async def aclose(self) -> None:
        """Close the SDK's pool of the current event loop."""
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._sdk = self._http = None
