"""The emulator's ASGI application: chat completions with limits, latency and faults, models,
``/stats``, plus the files, batch and fine-tuning APIs from their own modules.

Every response carries ``x-batchjudge-emulator: 1``; ``GET /`` says what this server is. The
app works in-process (an ASGI transport) and behind uvicorn (:mod:`batchjudge.emulator.server`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchjudge.emulator import batch, files, finetune, responses
from batchjudge.emulator.chat import ChatError, prepare, warm_up
from batchjudge.emulator.config import EmulatorConfig
from batchjudge.emulator.state import BASE_JUDGE, EmulatorState, KeyStats

__all__ = ["EMULATOR_HEADER", "create_app"]

EMULATOR_HEADER = "x-batchjudge-emulator"
IDENTITY = (
    "This is the batchjudge emulator of the Mistral API, not the real API: answers come from "
    "a local judge; limits, latency and faults are simulated."
)
_UNCOUNTED_PATHS = frozenset({"/", "/stats"})
_NON_JSON_BODY = b"<html><body><h1>502 Bad Gateway</h1>(emulated proxy page)</body></html>"


def _api_key(headers: Headers) -> str:
    """The bearer token of a request ('' when there is none)."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


class _Envelope:
    """Outermost layer: the emulator header, counters, and the API-key check."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stats = self.state.stats
        counted = scope["path"] not in _UNCOUNTED_PATHS

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-batchjudge-emulator", b"1")]
                if counted:
                    stats.by_status[message["status"]] += 1
            await send(message)

        if not counted:
            await self.app(scope, receive, send_marked)
            return
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            expected = self.state.config.api_key
            if expected is not None and _api_key(Headers(scope=scope)) != expected:
                reply = responses.error(401, "Unauthorized", kind="unauthorized")
                await reply(scope, receive, send_marked)
                return
            await self.app(scope, receive, send_marked)
        finally:
            stats.in_flight -= 1


class _Dropped(Response):
    """Starts a reply and stops mid-body, so the server closes the connection under it."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})


async def _hold(request: Request, seconds: float) -> None:
    """Wait ``seconds`` or until the client hangs up, whichever comes first."""
    try:
        async with asyncio.timeout(seconds):
            while not await request.is_disconnected():
                await asyncio.sleep(0.05)
    except TimeoutError:
        return


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``: limits, then an injected fault or the judge's answer."""
    state = _state(request)
    key = _api_key(request.headers)
    per_key = state.stats.chat_arrived(key)
    try:
        return await _chat(request, state, key, per_key)
    finally:
        state.stats.chat_answered(per_key)


async def _chat(request: Request, state: EmulatorState, key: str, per_key: KeyStats) -> Response:
    """The body of :func:`chat_completions` once the call is counted."""
    state.limiter.arrive(key)
    body = await responses.read_json(request)
    try:
        prepared = prepare(body, state.models)
    except ChatError as exc:
        return responses.json(exc.body, exc.status)
    admission = state.limiter.admit(key, prepared.prompt_tokens)
    headers = admission.headers
    if admission.too_large:
        return responses.error(400, "the request alone exceeds the tokens-per-minute limit")
    if not admission.allowed:
        state.stats.rate_limited += 1
        per_key.rate_limited += 1
        message = f"Rate limit exceeded: {admission.exceeded}"
        return responses.error(429, message, kind="rate_limited", headers=headers)

    fault = state.config.faults.draw(state.rng)
    delay = state.latency_s()
    if fault is not None:
        state.stats.faults[fault] += 1
    if fault == "slow":
        await _hold(request, state.config.slow_s)
    elif delay:
        await asyncio.sleep(delay)
    if fault == "drop":
        return _Dropped()
    if fault == "nonjson":
        return Response(_NON_JSON_BODY, 200, headers, media_type="text/html")
    if fault == "malformed":
        broken = {
            "id": "malformed",
            "object": "chat.completion",
            "model": prepared.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": None}}],
        }
        return responses.json(broken, 200, headers)
    if fault is not None and fault.isdigit():
        status = int(fault)
        if status == 429:
            headers = {**headers, **state.limiter.cooldown(key, 1.0)}
            state.stats.rate_limited += 1
            per_key.rate_limited += 1
        return responses.error(
            status, f"emulated fault {status}", kind="emulated_fault", headers=headers
        )

    payload = prepared.complete()
    usage = payload["usage"]
    state.limiter.charge(key, usage["completion_tokens"])
    state.stats.prompt_tokens += usage["prompt_tokens"]
    state.stats.completion_tokens += usage["completion_tokens"]
    return responses.json(payload, 200, headers)


async def list_models(request: Request) -> Response:
    """``GET /v1/models``."""
    cards = [m.card() for m in _state(request).models.values()]
    return responses.json({"object": "list", "data": cards})


async def retrieve_model(request: Request) -> Response:
    """``GET /v1/models/{model_id}``."""
    entry = _state(request).models.get(request.path_params["model_id"])
    if entry is None:
        return responses.error(404, "model not found", kind="not_found")
    return responses.json(entry.card())


async def identity(request: Request) -> Response:
    """``GET /``: says plainly that this is an emulator, and how it is configured."""
    config = _state(request).config
    return responses.json({"emulator": True, "message": IDENTITY, "config": config.describe()})


async def stats(request: Request) -> Response:
    """``GET /stats``: what the emulator saw (see :class:`~batchjudge.emulator.state.Stats`)."""
    return responses.json(_state(request).snapshot())


def create_app(
    config: EmulatorConfig | None = None, *, trainer: finetune.Trainer | None = None
) -> Starlette:
    """A fresh emulator (its own state) as an ASGI app.

    ``trainer`` replaces how fine-tuning jobs train (default: the local judge's ``train``).
    The state is reachable as ``app.state.emulator`` for in-process inspection.
    """
    state = EmulatorState(config or EmulatorConfig())
    route_list: list[Any] = [
        Route("/", identity, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
        *files.routes(),
        *batch.routes(),
        *finetune.routes(trainer or finetune.train_local_judge),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        warm_up(state.models, BASE_JUDGE)  # a served emulator pays tokenizer loads up front
        yield

    app = Starlette(routes=route_list, lifespan=lifespan)
    app.state.emulator = state
    app.add_middleware(_Envelope, state=state)
    return app
