"""Row keys given to more than one input row, found before anything is sent.

Results are keyed by row: two input rows with one key would get two results under that key,
and a resume that stops between them would never judge the second. So the run refuses such an
input (:class:`~batchjudge.errors.InputError`, exit 2) and names the first keys concerned.

:class:`DuplicateKeys` streams the input once beside the label-sanity check, keeping a 64-bit
hash per row (8 bytes a row in numpy, 16 while sorting: ~16 MB at 1M rows), and only when
two hashes are equal reads the input a second time to name the keys exactly (a hash collision
is then told apart from a real duplicate). Keys come from the ``id`` column when the input has
one; otherwise each row's key is a hash of its file's relative path, index and texts, which
can repeat only when two input files have the same relative path (``a/x.parquet`` and
``b/x.parquet`` given as ``a`` and ``b``), so only such files are keyed and checked. polars
(the vectorised hash) is imported only then: a run without ids does not pay for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from batchjudge.engine.source import InputFile, Source, row_key
from batchjudge.errors import InputError

__all__ = ["DuplicateKeys"]

Batches = Callable[[], Iterator[tuple[InputFile, int, pa.RecordBatch]]]
"""Starts a fresh stream of ``(file, first row index, batch)`` (``Source.arrow_batches``)."""

_SHOWN = 5
"""Duplicate keys named in the error."""


class DuplicateKeys:
    """Finds row keys that occur more than once in ``source``: :meth:`update` with every batch
    of one pass, then :meth:`check` (which may read the input again to name them)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.by_id = "id" in source.present
        rels = Counter(f.rel for f in source.files)
        self._shared_rel = {rel for rel, n in rels.items() if n > 1}
        self._hashes: list[np.ndarray] = []

    @property
    def needed(self) -> bool:
        """Whether any key can repeat at all (else the pass may be skipped)."""
        return self.by_id or bool(self._shared_rel)

    def keys(self, file: InputFile, start: int, batch: pa.RecordBatch) -> pa.Array | None:
        """The keys of ``batch``'s rows that can repeat (``None``: none can), as strings.

        Rows with a null id are keyed by content like rows without an id column, so they are
        left out (such a row fails alone, with its reason)."""
        if self.by_id:
            import polars as pl

            ids = pl.Series(batch.column("id")).drop_nulls()
            return ids.cast(pl.String).to_arrow()
        if file.rel not in self._shared_rel:
            return None
        premises = batch.column("premise").to_pylist()
        hypotheses = batch.column("hypothesis").to_pylist()
        return pa.array([
            row_key(file.rel, start + i, None if p is None else str(p), None if h is None else str(h))
            for i, (p, h) in enumerate(zip(premises, hypotheses, strict=True))
        ], pa.string())

    @staticmethod
    def _hash(keys: pa.Array) -> np.ndarray:
        import polars as pl

        return pl.Series(keys).hash(seed=0x1D5).to_numpy()

    def update(self, file: InputFile, start: int, batch: pa.RecordBatch) -> None:
        """Record the hashes of one batch's keys."""
        keys = self.keys(file, start, batch)
        if keys is not None and len(keys):
            self._hashes.append(self._hash(keys))

    def check(self, batches: Batches) -> None:
        """Raise InputError naming the repeated keys, if any (``batches`` re-reads the input)."""
        if not self._hashes:
            return
        hashes = np.sort(np.concatenate(self._hashes))
        self._hashes = []
        suspects = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
        del hashes
        if not suspects.size:
            return
        seen: dict[str, list[str]] = {}
        for file, start, batch in batches():
            keys = self.keys(file, start, batch)
            if keys is None or not len(keys):
                continue
            hit = np.flatnonzero(np.isin(self._hash(keys), suspects))
            if not hit.size:
                continue
            rows = self._row_numbers(file, start, batch)
            for i in hit.tolist():
                seen.setdefault(str(keys[i].as_py()), []).append(f"{file.rel} row {rows[i]}")
        repeated = {key: where for key, where in seen.items() if len(where) > 1}
        if repeated:
            raise InputError(self._message(repeated))

    def _row_numbers(self, file: InputFile, start: int, batch: pa.RecordBatch) -> list[int]:
        """The input row index of each key :meth:`keys` returned (null ids are left out)."""
        if not self.by_id:
            return list(range(start, start + batch.num_rows))
        valid = np.asarray(batch.column("id").is_valid(), dtype=bool)
        return [start + int(i) for i in np.flatnonzero(valid)]

    def _message(self, repeated: dict[str, list[str]]) -> str:
        extra = sum(len(where) - 1 for where in repeated.values())
        shown = "; ".join(
            f"{key!r} ×{len(where)} ({', '.join(where[:2])}{', ...' if len(where) > 2 else ''})"
            for key, where in list(repeated.items())[:_SHOWN]
        )
        more = f"; and {len(repeated) - _SHOWN} more" if len(repeated) > _SHOWN else ""
        if self.by_id:
            column = self.source.columns["id"]
            what = f"{len(repeated)} id(s) in column {column!r} appear on more than one row"
            fix = "make every id unique (or map --columns id=... to a unique column); nothing was sent"
        else:
            what = f"{len(repeated)} row(s) appear twice: two input files share a relative path"
            fix = "give each file once, or under distinct names; nothing was sent"
        return f"{what} ({extra} extra row(s)): {shown}{more} — results are one per id: {fix}"
