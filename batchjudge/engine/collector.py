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
from collections.abc import Callable, Iterator

__all__ = ["GEN0_THRESHOLD", "collector_tuned", "heap_frozen"]

GEN0_THRESHOLD = 20_000
"""Allocations between two generation-0 collections while a run works (CPython's default: 700)."""


class _Hold:
    """A process-wide collector setting (the collector is one per process) held by nested or
    concurrent blocks: ``enter(first)`` runs as each block starts, ``last_out()`` once the last
    one ends."""

    _lock = threading.Lock()  # an in-process emulator serves from its own thread

    def __init__(self, enter: Callable[[bool], None], last_out: Callable[[], None]) -> None:
        self._enter = enter
        self._last_out = last_out
        self._holders = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            self._enter(self._holders == 0)
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    self._last_out()


_saved_thresholds: tuple[int, ...] = ()


def _raise_threshold(first: bool) -> None:
    global _saved_thresholds
    if first:
        _saved_thresholds = gc.get_threshold()
        gen0, *rest = _saved_thresholds
        gc.set_threshold(max(gen0, GEN0_THRESHOLD), *rest)


_frozen = _Hold(lambda _: gc.freeze(), gc.unfreeze)  # every holder freezes what is alive as it starts
_tuned = _Hold(_raise_threshold, lambda: gc.set_threshold(*_saved_thresholds))


def heap_frozen() -> contextlib.AbstractContextManager[None]:
    """Keep every object alive now out of the collector's generations for the ``with`` block."""
    return _frozen()


@contextlib.contextmanager
def collector_tuned() -> Iterator[None]:
    """Freeze the heap and collect young objects less often for the ``with`` block (a run)."""
    with _frozen(), _tuned():
        yield
