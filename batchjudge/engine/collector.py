"""The garbage collector kept out of the way while the process paces requests.

Two places pace by the clock and suffer when the collector stops the process: the engine,
whose paced sends leave late and bunched, and the emulator, which stamps each request at its
arrival, so a pause stamps the requests queued meanwhile together, later than they came (its
clients then draw a 429 one second later). Both pauses were measured
(``benchmarks/README.md``): a full collection over the emulator's warmed-up tokenizers and
judge took 99-143 ms; a CLI run at 400 RPS (8,000 requests) spent 1.0 s of its 11.5 s of CPU
collecting (444 generation-0, 40 generation-1 and 3 full collections, the full ones 34-126 ms
each), because each request's state lives as long as its reply takes (0.3 s against the
emulator) and CPython's default generation-0 threshold (700 allocations) walked every request
in flight every few milliseconds.

:func:`heap_frozen` freezes what is alive when a block starts: it leaves the collector's
generations (reference counting still frees it) until the last block holding the heap frozen
ends, so a run and an in-process emulator in one process never unfreeze each other's heap.
:func:`collector_tuned`, around a run's work, adds a generation-0 threshold of
:data:`GEN0_THRESHOLD` allocations (a caller's higher one is kept), put back when the last
run ends: the same CLI run then took 9.2-9.9 s of CPU, 0.16-0.17 s of it collecting.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["GEN0_THRESHOLD", "collector_tuned", "heap_frozen"]

GEN0_THRESHOLD = 20_000
"""Allocations between two generation-0 collections while a run works (CPython's default: 700)."""


class _Holders:
    """The blocks now holding the heap frozen and the threshold raised (process-wide: the
    collector is), and the thresholds to put back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # an in-process emulator serves from its own thread
        self.frozen = 0
        self.tuned = 0
        self.saved: tuple[int, ...] = ()


_HOLDERS = _Holders()


@contextlib.contextmanager
def heap_frozen() -> Iterator[None]:
    """Keep every object alive now out of the collector's generations for the ``with`` block."""
    with _HOLDERS.lock:
        gc.freeze()
        _HOLDERS.frozen += 1
    try:
        yield
    finally:
        with _HOLDERS.lock:
            _HOLDERS.frozen -= 1
            if _HOLDERS.frozen == 0:
                gc.unfreeze()


@contextlib.contextmanager
def collector_tuned() -> Iterator[None]:
    """Freeze the heap and collect young objects less often for the ``with`` block (a run)."""
    with heap_frozen():
        with _HOLDERS.lock:
            if _HOLDERS.tuned == 0:
                _HOLDERS.saved = gc.get_threshold()
                first, *rest = _HOLDERS.saved
                gc.set_threshold(max(first, GEN0_THRESHOLD), *rest)
            _HOLDERS.tuned += 1
        try:
            yield
        finally:
            with _HOLDERS.lock:
                _HOLDERS.tuned -= 1
                if _HOLDERS.tuned == 0:
                    gc.set_threshold(*_HOLDERS.saved)
