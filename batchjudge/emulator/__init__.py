"""A local stand-in for the Mistral API: ``batchjudge emulator`` and the in-process app.

It speaks the API as the official SDK sends it (chat completions, models, files, batch and
fine-tuning jobs), answers with the local judge, and simulates rate limits (429 with
``Retry-After``), latency and faults. It always says it is an emulator
(``x-batchjudge-emulator: 1`` on every reply, ``GET /``). ``GET /stats`` reports what it saw,
including requests that arrived before the ``Retry-After`` their client had been given.
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
