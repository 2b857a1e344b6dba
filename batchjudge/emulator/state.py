"""What one running emulator holds: counters, stored files, models, batch and fine-tuning jobs.

Everything lives in memory and dies with the process, like a fresh account on every start.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchjudge.emulator.config import BASE_MODELS, EmulatorConfig
from batchjudge.emulator.limits import RateLimiter
from batchjudge.emulator.outage import Outage

__all__ = [
    "BASE_JUDGE",
    "EmulatorState",
    "KeyStats",
    "ModelEntry",
    "Stats",
    "StoredFile",
    "key_label",
    "new_id",
]

BASE_JUDGE = "local-judge"
"""The local judge that answers for every base model."""


def new_id() -> str:
    """An identifier shaped like the API's (a UUID)."""
    return str(uuid.uuid4())


def _offset(moment: float | None, origin: float) -> float | None:
    return None if moment is None else round(moment - origin, 4)


def key_label(key: str) -> str:
    """How ``/stats`` names an API key without revealing it: a short hash."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass(slots=True)
class KeyStats:
    """What one API key (one client) did: its chat calls, 429s and active time."""

    chat_completions: int = 0
    rate_limited: int = 0
    first_chat: float | None = None
    last_chat: float | None = None


@dataclass(slots=True)
class Stats:
    """Counters of what the emulator saw; served by ``GET /stats``."""

    requests: int = 0
    chat_completions: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    started: float = field(default_factory=time.monotonic)
    first_chat: float | None = None
    """When the first chat completion arrived (monotonic)."""
    last_chat: float | None = None
    """When the last chat completion was answered (monotonic)."""
    keys: dict[str, KeyStats] = field(default_factory=dict)

    def chat_arrived(self, key: str) -> KeyStats:
        """Count a chat completion (overall and for its key); note when the first came."""
        now = time.monotonic()
        self.chat_completions += 1
        if self.first_chat is None:
            self.first_chat = now
        per_key = self.keys.get(key)
        if per_key is None:
            per_key = self.keys[key] = KeyStats(first_chat=now)
        per_key.chat_completions += 1
        return per_key

    def chat_answered(self, per_key: KeyStats) -> None:
        """Note when the latest chat completion (overall and for its key) was answered."""
        self.last_chat = per_key.last_chat = time.monotonic()

    def snapshot(self, limiter: RateLimiter, outage: Outage) -> dict[str, Any]:
        """A JSON-ready copy of the counters; API keys appear only as :func:`key_label`.

        Per key: its chat calls, 429s, early arrivals and Retry-After violations, and from the
        limiter the requests and tokens it was admitted, the 429s by refusing window, and each
        window's limit, current use and peak use.
        """
        keys = {}
        for key, per_key in self.keys.items():
            early, violations = limiter.counts(key)
            keys[key_label(key)] = {
                "chat_completions": per_key.chat_completions,
                "rate_limited": per_key.rate_limited,
                "retry_after_violations": violations,
                "early_arrivals": early,
                "first_chat_s": _offset(per_key.first_chat, self.started),
                "last_chat_s": _offset(per_key.last_chat, self.started),
                **limiter.report(key),
            }
        return {
            "emulator": True,
            "limits": limiter.limits.describe(),
            "requests": self.requests,
            "chat_completions": self.chat_completions,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "rate_limited": self.rate_limited,
            "retry_after_violations": limiter.violations,
            "early_arrivals": limiter.early_arrivals,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "faults": dict(sorted(self.faults.items())),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "first_chat_s": _offset(self.first_chat, self.started),
            "last_chat_s": _offset(self.last_chat, self.started),
            "outage": outage.describe(),
            "keys": keys,
        }


@dataclass(slots=True)
class StoredFile:
    """An uploaded or generated file and the metadata the files API returns."""

    id: str
    filename: str
    purpose: str
    content: bytes
    sample_type: str
    source: str = "upload"
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def num_lines(self) -> int:
        return sum(1 for line in self.content.splitlines() if line.strip())

    def describe(self) -> dict[str, Any]:
        """The file object as ``GET /v1/files/{id}`` returns it."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "sample_type": self.sample_type,
            "source": self.source,
            "num_lines": self.num_lines,
            "mimetype": "application/jsonl",
            "signature": None,
            "deleted": False,
        }


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A model the emulator answers for, and the local judge that plays it."""

    id: str
    judge: str
    fine_tuned: bool = False
    base: str | None = None
    job: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def card(self) -> dict[str, Any]:
        """The model card as ``GET /v1/models`` lists it."""
        card: dict[str, Any] = {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": "batchjudge-emulator",
            "name": self.id,
            "description": f"emulated by the local judge {self.judge!r}",
            "max_context_length": 32768,
            "aliases": [],
            "capabilities": {"completion_chat": True, "fine_tuning": not self.fine_tuned},
            "type": "fine-tuned" if self.fine_tuned else "base",
        }
        if self.fine_tuned:
            card["job"] = self.job
            card["root"] = self.base
            card["archived"] = False
        return card


class EmulatorState:
    """The mutable world of one emulator: config, limiter, outage, RNG, counters and stores.

    ``clock`` (monotonic seconds) drives the limits and outages; tests inject their own.
    """

    def __init__(
        self, config: EmulatorConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.limiter = RateLimiter(config.limits(), clock=clock)
        self.outage = Outage(config.outage, clock)
        self.rng = random.Random(config.seed)
        self.echoes = 0
        """``echo`` faults played so far (each plays the next of its replies in turn)."""
        self.stats = Stats()
        self.files: dict[str, StoredFile] = {}
        self.models: dict[str, ModelEntry] = {m: ModelEntry(m, BASE_JUDGE) for m in BASE_MODELS}
        self.batch_jobs: dict[str, dict[str, Any]] = {}
        self.ft_jobs: dict[str, dict[str, Any]] = {}
        self.background: set[asyncio.Task[None]] = set()

    def spawn(self, work: Any) -> None:
        """Run a job's coroutine in the background, keeping a reference until it ends."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def latency_s(self) -> float:
        """One draw of the configured latency, in seconds (never negative)."""
        cfg = self.config
        if cfg.latency_ms <= 0 and cfg.jitter_ms <= 0:
            return 0.0
        ms = cfg.latency_ms + self.rng.uniform(-cfg.jitter_ms, cfg.jitter_ms)
        return max(0.0, ms) / 1000.0

    def add_file(
        self, filename: str, purpose: str, content: bytes, sample_type: str, source: str = "upload"
    ) -> StoredFile:
        """Store a file and return it."""
        stored = StoredFile(new_id(), filename, purpose, content, sample_type, source)
        self.files[stored.id] = stored
        return stored

    def snapshot(self) -> dict[str, Any]:
        """``GET /stats``."""
        return self.stats.snapshot(self.limiter, self.outage)
