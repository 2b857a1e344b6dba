"""The emulator's ASGI application: chat completions with limits, latency and faults, models,
``/stats`` and ``/admin/outage``, plus the files, batch and fine-tuning APIs (Mistral only)
from their own modules.

Every response carries ``x-batchjudge-emulator: 1``; ``GET /`` says what this server is. A
rate-limited reply also carries ``x-batchjudge-limit`` naming the window that refused it (or
``fault`` for an injected 429): emulator-only, for tests and benchmarks. The app works
in-process (an ASGI transport) and behind uvicorn (:mod:`batchjudge.emulator.server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchjudge.adapters.mistral import EMULATOR_HEADER
from batchjudge.emulator import batch, fault_replies, files, finetune, responses
from batchjudge.emulator.chat import (
    ChatError,
    PreparedChat,
    prepare,
    text_tokens,
    warm_up,
)
from batchjudge.emulator.config import EmulatorConfig
from batchjudge.emulator.dialects import Dialect, dialect_for
from batchjudge.emulator.faults import long_wait, stall_seconds
from batchjudge.emulator.headers import rate_headers, retry_headers
from batchjudge.emulator.limits import Admission
from batchjudge.emulator.state import BASE_JUDGE, EmulatorState, KeyStats
from batchjudge.engine.collector import heap_frozen

__all__ = ["EMULATOR_HEADER", "LIMIT_HEADER", "create_app"]

LIMIT_HEADER = "x-batchjudge-limit"
_UNCOUNTED_PATHS = frozenset({"/", "/stats", "/admin/outage"})


def _api_key(headers: Headers) -> str:
    """The bearer token of a request ('' when there is none)."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


class _Envelope:
    """Outermost layer: the emulator header, counters, the outage clock, the API-key check."""

    def __init__(self, app: ASGIApp, state: EmulatorState, dialect: Dialect) -> None:
        self.app = app
        self.state = state
        self.dialect = dialect

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
        self.state.outage.first_request()
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            expected = self.state.config.api_key
            if expected is not None and _api_key(Headers(scope=scope)) != expected:
                await self.dialect.unauthorized()(scope, receive, send_marked)
                return
            await self.app(scope, receive, send_marked)
        finally:
            stats.in_flight -= 1


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _dialect(request: Request) -> Dialect:
    dialect: Dialect = request.app.state.dialect
    return dialect


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``: limits, then an injected fault or the judge's answer."""
    state = _state(request)
    key = _api_key(request.headers)
    per_key = state.stats.chat_arrived(key)
    try:
        return await _chat(request, state, key, per_key)
    finally:
        state.stats.chat_answered(per_key)


def _rate_limited(
    state: EmulatorState,
    dialect: Dialect,
    key: str,
    per_key: KeyStats,
    why: str,
    wait_s: float,
    headers: dict[str, str],
) -> Response:
    """A 429 (``why``: the refusing window or ``fault``) telling the client to wait ``wait_s``.

    The wait the headers announce starts the key's cooldown, against which early arrivals and
    Retry-After violations are counted.
    """
    retry, announced = retry_headers(state.config.header_shape, wait_s)
    if announced:
        state.limiter.cooldown(key, announced)
    state.stats.rate_limited += 1
    per_key.rate_limited += 1
    return dialect.rate_limited(why, {**headers, **retry, LIMIT_HEADER: why})


def _refuse(
    state: EmulatorState, dialect: Dialect, key: str, per_key: KeyStats, refusal: Admission
) -> Response:
    """A 429 for a request a window refused, with the window's readings."""
    headers = rate_headers(state.config.header_shape, state.limiter.readings(key), None)
    return _rate_limited(
        state, dialect, key, per_key, refusal.refused_by, refusal.wait_s, headers
    )


async def _chat(request: Request, state: EmulatorState, key: str, per_key: KeyStats) -> Response:
    """The body of :func:`chat_completions` once the call is counted.

    The request windows decide at arrival, before the body is read (no await in between, so
    arrivals are admitted in order); the token limits once the answer, hence the cost, is known.
    """
    limiter, dialect, shape = state.limiter, _dialect(request), state.config.header_shape
    gate = limiter.admit_request(key, limiter.arrive(key))
    if not gate.allowed:
        return _refuse(state, dialect, key, per_key, gate)
    body = await responses.read_json(request)
    try:
        prepared = prepare(body, state.models, dialect.name)
    except ChatError as exc:
        return dialect.chat_error(exc, rate_headers(shape, limiter.readings(key), None))
    payload = prepared.complete()
    charge = limiter.admit_tokens(key, payload["usage"]["total_tokens"])
    if charge.too_large:
        message = "the request alone exceeds the tokens-per-minute limit"
        headers = rate_headers(shape, limiter.readings(key), None)
        return dialect.error(400, message, "invalid_request_error", headers)
    if not charge.allowed:
        return _refuse(state, dialect, key, per_key, charge)
    cost = charge.cost if limiter.counts_tokens else None
    headers = rate_headers(shape, limiter.readings(key), cost)

    fault = state.config.faults.draw(state.rng)
    delay = state.latency_s()
    if fault is not None:
        state.stats.faults[fault] += 1
        if (stall := stall_seconds(fault)) is not None:
            time.sleep(stall)  # blocks the whole loop on purpose: arrivals meanwhile are stamped late
            fault = None  # ...and this request is answered as usual
    if fault == "slow":
        await fault_replies.hold(request, state.config.slow_s)
    elif delay:
        await asyncio.sleep(delay)
    if fault is not None:
        return _fault_reply(request, state, dialect, key, per_key, fault, prepared, headers)
    usage = payload["usage"]
    state.stats.prompt_tokens += usage["prompt_tokens"]
    state.stats.completion_tokens += usage["completion_tokens"]
    return responses.json(dialect.completion(payload), 200, headers)


def _fault_reply(
    request: Request,
    state: EmulatorState,
    dialect: Dialect,
    key: str,
    per_key: KeyStats,
    fault: str,
    prepared: PreparedChat,
    headers: dict[str, str],
) -> Response:
    """The reply of an injected fault (see :mod:`batchjudge.emulator.faults`)."""
    if fault == "drop":
        return fault_replies.dropped()
    if fault == "nonjson":
        return fault_replies.nonjson(headers)
    if fault == "malformed":
        return fault_replies.malformed(prepared.model, headers)
    if fault == "huge":
        count = functools.partial(text_tokens, prepared.model)
        return fault_replies.huge(prepared.model, prepared.prompt_tokens, count, headers)
    if fault == "echo":
        state.echoes += 1
        return fault_replies.echo(request, state.echoes - 1, dialect, headers)
    wait = long_wait(fault) or (1.0 if fault == "429" else None)
    if wait is not None:
        return _rate_limited(state, dialect, key, per_key, "fault", wait, headers)
    status = int(fault)
    return dialect.error(status, f"emulated fault {status}", "emulated_fault", headers)


async def list_models(request: Request) -> Response:
    """``GET /v1/models``."""
    dialect = _dialect(request)
    cards = [dialect.model_card(m) for m in _state(request).models.values()]
    return responses.json({"object": "list", "data": cards})


async def retrieve_model(request: Request) -> Response:
    """``GET /v1/models/{model_id}``."""
    dialect = _dialect(request)
    entry = _state(request).models.get(request.path_params["model_id"])
    if entry is None:
        return dialect.error(404, "model not found", "not_found")
    return responses.json(dialect.model_card(entry))


async def identity(request: Request) -> Response:
    """``GET /``: says plainly that this is an emulator, and how it is configured."""
    config = _state(request).config
    message = _dialect(request).identity
    return responses.json({"emulator": True, "message": message, "config": config.describe()})


async def stats(request: Request) -> Response:
    """``GET /stats``: what the emulator saw (see :class:`~batchjudge.emulator.state.Stats`)."""
    return responses.json(_state(request).snapshot())


async def admin_outage(request: Request) -> Response:
    """``POST /admin/outage`` ``{"seconds": S}``: reset every connection for S seconds from now.

    Emulator-only. The reply to this request is sent; what comes after it meets the outage.
    """
    body = await responses.read_json(request)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        return responses.error(422, "send {\"seconds\": S} with S > 0")
    outage = _state(request).outage
    outage.start_now(float(seconds))
    return responses.json({"outage": outage.describe()})


def create_app(
    config: EmulatorConfig | None = None,
    *,
    trainer: finetune.Trainer | None = None,
    clock: Callable[[], float] | None = None,
) -> Starlette:
    """A fresh emulator (its own state) as an ASGI app.

    ``trainer`` replaces how fine-tuning jobs train (default: the local judge's ``train``);
    ``clock`` (monotonic seconds) replaces the one the limits and outages read (tests).
    The state is reachable as ``app.state.emulator`` for in-process inspection. With
    ``api="openai"`` only chat completions and models are served.
    """
    config = config or EmulatorConfig()
    state = EmulatorState(config) if clock is None else EmulatorState(config, clock=clock)
    dialect = dialect_for(config.api)
    route_list: list[Any] = [
        Route("/", identity, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/admin/outage", admin_outage, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
    ]
    if config.api == "mistral":
        route_list += [
            *files.routes(),
            *batch.routes(),
            *finetune.routes(trainer or finetune.train_local_judge),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        warm_up(state.models, BASE_JUDGE)  # a served emulator pays tokenizer loads up front
        gc.collect()  # the warm-up's garbage, before the rest is frozen
        with heap_frozen():  # a collection over it would stamp the requests queued meanwhile late
            yield

    app = Starlette(routes=route_list, lifespan=lifespan)
    app.state.emulator = state
    app.state.dialect = dialect
    app.add_middleware(_Envelope, state=state, dialect=dialect)
    return app
