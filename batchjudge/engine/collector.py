"""The garbage collector tuned for the length of a run.

At hundreds of requests a second the engine makes young objects fast, and each request's state
lives as long as its reply takes (0.3 s against the emulator). With CPython's default
generation-0 threshold (700 allocations) the collector then runs every few milliseconds,
walking every request in flight each time, and its full collections walk everything the
process built before the run (imports, the tokenizer, the caller's own objects), stopping the
event loop for 70-130 ms, which sends the paced requests late and bunched. Measured on the CLI
at 400 RPS (8,000 requests, ``benchmarks/README.md``): 444 generation-0, 40 generation-1 and 3
full collections took 1.0 s of the run's 11.7 s of CPU; with the heap frozen and generation 0
at 20,000 allocations the same run took 9.0 s.

So, for the run's length only, :func:`collector_tuned` freezes what is alive at its start (it
leaves the collector's generations; reference counting still frees it, and it is collected as
before once the run ends) and collects generation 0 every :data:`GEN0_THRESHOLD` allocations.
Both are put back when the run ends; nested or concurrent runs in one process tune once, and
the last one to end puts it back.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["GEN0_THRESHOLD", "collector_tuned"]

GEN0_THRESHOLD = 20_000
"""Allocations between two generation-0 collections while a run works (CPython's default: 700)."""


class _Tuning:
    """How many runs are working, and the thresholds to put back when the last one ends."""

    def __init__(self) -> None:
        self.runs = 0
        self.saved = gc.get_threshold()

    def enter(self) -> None:
        if self.runs == 0:
            self.saved = gc.get_threshold()
            gc.freeze()
            first, *rest = self.saved
            gc.set_threshold(max(first, GEN0_THRESHOLD), *rest)
        self.runs += 1

    def leave(self) -> None:
        self.runs -= 1
        if self.runs == 0:
            gc.set_threshold(*self.saved)
            gc.unfreeze()


_TUNING = _Tuning()


@contextlib.contextmanager
def collector_tuned() -> Iterator[None]:
    """Freeze the heap and collect young objects less often for the ``with`` block."""
    _TUNING.enter()
    try:
        yield
    finally:
        _TUNING.leave()
