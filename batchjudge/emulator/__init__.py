"""A local stand-in for the Mistral API: ``batchjudge emulator`` and the in-process app.

It speaks the API as the official SDK sends it (chat completions, models, files, batch and
fine-tuning jobs), answers with the local judge, and simulates rate limits, latency, faults and
outages. ``--api openai`` speaks an OpenAI-compatible chat completions API instead (chat and
models only). It always says it is an emulator (``x-batchjudge-emulator: 1`` on every reply,
``GET /``).

Limits (per API key; each optional; see :mod:`.limits`)
    ``--rps N``: at most N requests admitted in any rolling 1 s, decided at arrival; the
    N+1-th is refused until the oldest of the N is 1 s old. ``--rpm N``: the same over 60 s.
    ``--tpm T``: a request costs its prompt plus completion tokens (what ``usage`` reports; the
    completion is cut at ``max_tokens``), charged when its body is read; it passes only if the
    whole cost fits in the last 60 s, else 429 until enough tokens expire; a request costing
    more than T is a 400. ``--tokens-per-month B``: once B tokens are spent, every request gets
    a 429 with no Retry-After. A request refused by a request window does not count in it; one
    refused for tokens still counts in the request windows.

Headers on every chat reply (``--headers``; see :mod:`.headers` for every shape)
    ``mistral`` (default): ``x-ratelimit-limit-req-minute``, ``x-ratelimit-remaining-req-minute``
    (with ``--rpm``), ``x-ratelimit-limit-tokens-minute``,
    ``x-ratelimit-remaining-tokens-minute`` (``--tpm``), ``x-ratelimit-limit-tokens-month``,
    ``x-ratelimit-remaining-tokens-month`` (``--tokens-per-month``) and
    ``x-ratelimit-tokens-query-cost`` (the tokens this request was charged, when a token limit
    is set). The per-second window is enforced but never announced, as on the hosted API.
    ``second`` adds ``x-ratelimit-{limit,remaining}-req-second`` and ``retry-after-ms``;
    ``bysize`` is the older ``ratelimitbysize-*`` / ``x-ratelimitbysize-*`` family; ``openai``
    OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; ``none`` sends nothing.
    Remaining counts include the request being answered.

A refused request
    429 with the API's body (Mistral: ``{"object": "error", "message": "Rate limit exceeded",
    "type": "rate_limited", "param": null, "code": "1300", "raw_status_code": 429}``) and
    ``Retry-After`` in whole seconds (rounded up, at least 1) until the request would fit;
    none when waiting cannot help (month spent) or with ``--headers none``. The emulator-only
    ``x-batchjudge-limit`` names the window that refused it (``requests-second``,
    ``requests-minute``, ``tokens-minute``, ``tokens-month``, or ``fault``).

Faults (``--faults KIND:P,...``; see :mod:`.faults`) and outages (``--outage AT:FOR``,
``POST /admin/outage {"seconds": S}``; see :mod:`.outage`) play a broken or hostile server:
error statuses, dropped and held replies, bad bodies, error bodies echoing the request's
``Authorization`` header, 10 MB replies, day-long Retry-After, and spells in which every
connection is reset.

``GET /stats`` reports what it saw: requests by status, 429s, faults, outage resets, and per
API key (named by a hash) its chat calls, 429s, early arrivals and Retry-After violations
(arrivals before the Retry-After it was sent), admitted requests and tokens, 429s by window and
each window's limit, current use and peak use.
"""

from __future__ import annotations

from batchjudge.emulator.app import create_app
from batchjudge.emulator.config import BASE_MODELS, EmulatorConfig, parse_latency
from batchjudge.emulator.faults import FaultSpec
from batchjudge.emulator.outage import parse_outage
from batchjudge.emulator.server import EmulatorServer, bind, serve

__all__ = [
    "BASE_MODELS",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultSpec",
    "bind",
    "create_app",
    "parse_latency",
    "parse_outage",
    "serve",
]
