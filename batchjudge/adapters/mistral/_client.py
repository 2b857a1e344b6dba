"""The package's one HTTP client for Mistral's API (or an OpenAI-compatible server).

Chat completions, files, batch jobs and fine-tuning all go through :class:`ApiClient`: one key
rule and one base-URL rule (:mod:`._settings`), one translation of failures into the package's
errors (:func:`~._wire.error_for_status` for HTTP statuses; connection failures become
:class:`~batchjudge.errors.UnreachableError` when no connection could be made,
:class:`~batchjudge.errors.DisconnectedError` when one was reset or closed before any reply,
and :class:`~batchjudge.errors.TransientError` when a reply broke off). A reply larger than the
cap fails with :class:`~batchjudge.errors.ReplyTooLargeError` without reading the rest. The key
is sent in the ``Authorization`` header and appears in no message, ``repr`` or log.

Chat completions, a run's thousands of requests, go through the lean keep-alive client of
:mod:`._http1` (less than half the CPU a request of ``aiohttp``); files, batch jobs and
fine-tuning through one ``aiohttp`` session per event loop (made on first use, sized to the
caller's concurrency), imported only when one of them is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from batchjudge.adapters.mistral._failures import cause, connect_timeout, disconnected, no_reply, too_large, unreachable
from batchjudge.adapters.mistral._http1 import Http1Pool, HttpReply
from batchjudge.adapters.mistral._settings import normalise_base_url, resolve_api_key
from batchjudge.adapters.mistral._wire import (
    EMULATOR_HEADER,
    MISTRAL,
    Dialect,
    error_for_status,
    kept_headers,
    reply_from_payload,
)
from batchjudge.core.types import JudgeReply
from batchjudge.errors import ProviderError, TransientError

if TYPE_CHECKING:
    import aiohttp

__all__ = ["DEFAULT_MAX_REPLY_BYTES", "ApiClient", "HttpReply"]

DEFAULT_MAX_REPLY_BYTES = 1024 * 1024
"""A judge's reply is a few hundred bytes; a megabyte is a broken or hostile server."""
_CHUNK = 64 * 1024
_CONNECT_SECONDS = 10.0
"""A connection not made in this long is an unreachable endpoint (a dropped SYN), not a slow reply."""
_USER_AGENT = "batchjudge"

ErrorHook = Callable[[int, bytes], ProviderError | None]
"""Maps a status and body to a caller-specific error (the fine-tuning API's 410), else None."""


class ApiClient:
    """One server, one key, one session per event loop; see the module docstring.

    ``api_key`` ``None`` reads the dialect's variable (or ``api_key_env``); ``concurrency``
    sizes the connection pool; ``timeout`` bounds each request (seconds);
    ``max_reply_bytes`` caps what is read of one reply (``None``: no cap, for file downloads).
    """

    def __init__(
        self,
        *,
        dialect: Dialect = MISTRAL,
        api_key: str | None = None,
        api_key_env: str | None = None,
        base_url: str | None = None,
        allow_insecure_http: bool = False,
        concurrency: int = 16,
        timeout: float = 60.0,
        max_reply_bytes: int | None = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self.dialect = dialect
        self.base_url = normalise_base_url(base_url, dialect, allow_insecure_http=allow_insecure_http)
        key = resolve_api_key(api_key, dialect, base_url=self.base_url, env=api_key_env)
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_reply_bytes = max_reply_bytes
        self._chat = Http1Pool(self.base_url, self._headers, timeout=timeout, connect_timeout=_CONNECT_SECONDS)
        self.emulator = False
        """Whether a reply said it came from ``batchjudge emulator`` (nothing is billed)."""
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"ApiClient(dialect={self.dialect.name!r}, base_url={self.base_url!r})"

    @property
    def api_key(self) -> str:
        """The key, for the one other client that needs it (the official SDK)."""
        return self._headers["Authorization"].removeprefix("Bearer ")

    def _received(self, reply: HttpReply) -> HttpReply:
        """Note whether the reply came from ``batchjudge emulator``; return it."""
        if EMULATOR_HEADER in reply.headers:
            self.emulator = True
        return reply

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=300),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(self.timeout, _CONNECT_SECONDS)),
                skip_auto_headers=("User-Agent",),
            )
            self._loop = loop
        return self._session

    async def request(
        self, method: str, path: str, *, what: str, cap: int | None = None, **kwargs: Any
    ) -> HttpReply:
        """Send one request to ``base_url + path``; failures to connect or read are translated.

        ``cap`` overrides the client's reply cap for this request (0 lifts it).
        """
        import aiohttp

        url = self.base_url + path
        limit = self.max_reply_bytes if cap is None else (cap or None)
        try:
            async with self._client().request(method, url, **kwargs) as response:
                body = await _read(response, limit, what)
                return self._received(HttpReply(response.status, response.headers, body))
        except aiohttp.ConnectionTimeoutError:
            raise connect_timeout(what, self.base_url, min(self.timeout, _CONNECT_SECONDS)) from None
        except TimeoutError:
            raise no_reply(what, self.timeout) from None
        except aiohttp.ClientConnectorError as exc:
            raise unreachable(what, self.base_url, cause(exc)) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise disconnected(what, cause(exc)) from None
        except aiohttp.ClientError as exc:
            raise TransientError(f"{what}: connection error: {type(exc).__name__}: {exc}") from None

    async def call(
        self, method: str, path: str, *, what: str, on_error: ErrorHook | None = None, **kwargs: Any
    ) -> Any:
        """:meth:`request`, then a non-2xx status as the package's error, else decoded JSON."""
        reply = await self.request(method, path, what=what, **kwargs)
        if reply.status >= 300:
            special = on_error(reply.status, reply.body) if on_error is not None else None
            raise special or error_for_status(reply.status, reply.headers, reply.body, self.dialect, what=what)
        try:
            return orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise TransientError(
                f"{what}: malformed reply from {self.dialect.label}: HTTP {reply.status} body is not JSON "
                f"({reply.headers.get('content-type', 'no content type')})"
            ) from None

    # -- chat completions ------------------------------------------------------------
    async def chat(self, body: Mapping[str, Any]) -> JudgeReply:
        """``POST /v1/chat/completions``; the reply checked against the schema."""
        reply = self._received(await self._chat.request(
            "POST", "/v1/chat/completions", orjson.dumps(body), content_type="application/json",
            what="chat completion", cap=self.max_reply_bytes,
        ))
        if reply.status >= 300:
            raise error_for_status(reply.status, reply.headers, reply.body, self.dialect)
        try:
            payload = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            kind = reply.headers.get("content-type", "no content type")
            raise TransientError(
                f"malformed reply from {self.dialect.label}: HTTP {reply.status} body is not JSON ({kind})"
            ) from None
        return reply_from_payload(payload, kept_headers(reply.headers), self.dialect)

    # -- files and batch jobs --------------------------------------------------------
    async def upload_file(self, path: Path, *, purpose: str) -> str:
        """Upload ``path`` (``POST /v1/files``, multipart); return the file id."""
        import aiohttp
        import anyio

        form = aiohttp.FormData()
        form.add_field("purpose", purpose)
        form.add_field(
            "file", await anyio.Path(path).read_bytes(), filename=path.name,
            content_type="application/jsonl",
        )
        data = await self.call("POST", "/v1/files", what=f"upload {path.name}", data=form)
        return str(data["id"])

    async def download_file(self, file_id: str) -> bytes:
        """A file's content (``GET /v1/files/{id}/content``), uncapped."""
        reply = await self.request("GET", f"/v1/files/{file_id}/content", what=f"download {file_id}", cap=0)
        if reply.status >= 300:
            raise error_for_status(reply.status, reply.headers, reply.body, self.dialect, what=f"download {file_id}")
        return reply.body

    async def create_batch_job(self, file_id: str, *, model: str, endpoint: str, metadata: dict[str, str]) -> Any:
        """``POST /v1/batch/jobs`` for one uploaded input file; the job as JSON."""
        body = {"input_files": [file_id], "endpoint": endpoint, "model": model, "metadata": metadata}
        return await self.call("POST", "/v1/batch/jobs", what="create batch job", json=body)

    async def get_batch_job(self, job_id: str) -> Any:
        """``GET /v1/batch/jobs/{id}``; the job as JSON."""
        return await self.call("GET", f"/v1/batch/jobs/{job_id}", what=f"batch job {job_id}")

    async def aclose(self) -> None:
        """Close the connections and the session of the current event loop (those of another
        loop are dropped)."""
        self._chat.close()
        if self._session is not None and not self._session.closed and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None
        # Closing only schedules the transports' closing: give the loop one turn to finish it,
        # or a loop closed right after leaks them (aiohttp's advice, true of any transport).
        await asyncio.sleep(0)


async def _read(response: aiohttp.ClientResponse, cap: int | None, what: str) -> bytes:
    """The body, or ReplyTooLargeError as soon as it is known to exceed ``cap`` bytes."""
    if cap is None:
        return await response.read()
    length = response.content_length
    if length is not None and length > cap:
        raise too_large(what, cap, length)
    if length is not None:  # declared and within the cap: read it in one go (the common case)
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > cap:
            raise too_large(what, cap)
    return bytes(body)
