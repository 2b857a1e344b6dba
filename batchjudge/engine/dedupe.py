"""Identical requests sent once: the second of two identical rows reuses the first's answer.

Datasets repeat rows (the same pair under two ids, a summary scored twice); without this, ten
identical rows cost ten calls. Two requests are identical when everything sent is: model,
messages, temperature, ``max_tokens``, seed and response format — plus the row's premise and
hypothesis, which the local judge reads instead of the messages. A request is keyed by a
64-bit hash of those (:func:`request_key`), never kept beyond the session; only deterministic
requests are keyed (temperature 0, or a fixed seed): two samples at temperature 0.7 are two
draws, not one answer twice.

:class:`Dedupe` holds, for one session of one run:

- the keys being judged right now, each with an event its duplicates wait on;
- the answers to the last :data:`WINDOW` distinct keys (least recently used first out).

So memory is bounded whatever the dataset's size (about 500 bytes per remembered answer of a
judge's size, never the messages: 8.4 MB for a full window, measured with tracemalloc), and an identical row far from its twin (more than :data:`WINDOW` distinct
requests later) is simply sent again. Nothing is kept across sessions: a resumed run starts
with an empty window. Only answers are shared; when the first call fails, its duplicates try
on their own, since a retry may succeed where it did not.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import anyio
import orjson

from batchjudge.core.types import JudgeReply, JudgeRequest

__all__ = ["WINDOW", "Dedupe", "KeyWindow", "request_key"]

WINDOW = 16_384
"""Distinct answers remembered per run session."""


def request_key(request: JudgeRequest) -> int | None:
    """A 64-bit hash of what ``request`` sends, or None when its answer is a random draw.

    Python's own string and tuple hashing (3.5 µs for a 2,400-character prompt, against 12 µs
    for serialising and hashing with blake2b): salted per process, which suits keys that live
    only as long as the session that made them.
    """
    if request.temperature > 0 and request.seed is None:
        return None
    fmt = request.response_format
    return hash((
        request.model, tuple((m.get("role"), m.get("content")) for m in request.messages),
        request.temperature, request.max_tokens, request.seed,
        None if fmt is None else orjson.dumps(fmt, option=orjson.OPT_SORT_KEYS),
        request.premise, request.hypothesis,
    ))  # fmt: skip


class KeyWindow:
    """The last ``size`` distinct keys seen: the part of :class:`Dedupe` a dry run replays."""

    def __init__(self, size: int = WINDOW) -> None:
        self.size = size
        self._keys: OrderedDict[int, None] = OrderedDict()

    def seen(self, key: int) -> bool:
        """Whether ``key`` is in the window; it becomes the most recent either way."""
        known = key in self._keys
        self._keys[key] = None
        self._keys.move_to_end(key)
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return known


class Dedupe:
    """Shares answers between identical requests of one session; see the module docstring.

    A worker calls :meth:`claim` with the row's key: it gets the answer of an identical
    request (no call needed), or None and must then judge the row and :meth:`settle` the key
    with the replies (or None when it got none) — in a ``finally``, so that duplicates waiting
    on it are never left waiting.
    """

    def __init__(self, size: int = WINDOW) -> None:
        self.size = size
        self._answers: OrderedDict[int, tuple[JudgeReply, ...]] = OrderedDict()
        self._pending: dict[int, anyio.Event | None] = {}
        """Keys being judged; the event exists once a duplicate waits (most keys have none)."""

    async def claim(self, key: int) -> tuple[JudgeReply, ...] | None:
        """The answer to ``key`` if one is known or being made (waits for it), else None: the
        caller now owns ``key``."""
        while True:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
                return answer
            if key not in self._pending:
                self._pending[key] = None
                return None
            event = self._pending[key]
            if event is None:
                event = self._pending[key] = anyio.Event()
            await event.wait()  # answered (loop finds it) or failed (loop claims it)

    def settle(self, key: int, replies: Sequence[JudgeReply] | None) -> None:
        """Release ``key``: remember ``replies`` (without their headers) for its duplicates."""
        if replies:
            self._answers[key] = tuple(
                JudgeReply(r.text, r.prompt_tokens, r.completion_tokens, r.model) for r in replies
            )
            if len(self._answers) > self.size:
                self._answers.popitem(last=False)
        event = self._pending.pop(key, None)
        if event is not None:
            event.set()
