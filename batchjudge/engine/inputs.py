"""What a run read from each input, as a content fingerprint, so that a resume sees an edit.

A run's results are judged against its input rows; an input edited between two sessions (a
label flipped in place, a row reworded) would leave results that disagree with the rows they
are reported against. So the first session records in ``run.json`` (key ``inputs``) a digest
of what it read, and each resume compares (:func:`input_changes`): a changed input is refused,
naming the file, unless ``--allow-changed-inputs`` asks for the rows of its changed chunks to
be judged again (:func:`kept_keys` names the results that stay).

Each file's rows are cut by position into chunks of :data:`CHUNK_ROWS`; each chunk's digest
covers the columns the engine uses, by role, in canonical form:

- ``premise``, ``hypothesis`` and ``id`` (an integer id as the text the engine keys it by):
  each row's UTF-8 length (-1 for null) in one stream, its bytes in another;
- ``target``: each row's validity in one stream, its value as a 64-bit integer in another.

Each stream is fed row after row whatever batches pyarrow hands over, so a digest depends on
the values alone: not on row groups, batch sizes, array offsets, encoding, compression, or the
file's size or modification time. Rewriting a file with the same rows is no change; any
changed value, added or removed row, or added or removed column of a role is. The digests
are computed in the streamed pass every run makes before it starts
(:func:`~batchjudge.engine.pipeline.preflight`), holding one chunk's hashers at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from batchjudge.engine.checkpoint import key_hashes, key_hashes_in_order
from batchjudge.engine.source import LOGICAL_COLUMNS, InputFile, Source, source_rows
from batchjudge.errors import InputError

__all__ = ["CHUNK_ROWS", "SCHEME", "FileChange", "InputDigest", "changed_inputs_error", "input_changes", "kept_keys"]

CHUNK_ROWS = 65_536
"""Rows per digest: 153 digests (about 7 KB of ``run.json``) for 10M rows; an edit costs the
rows of its chunk a new judgement under ``--allow-changed-inputs``."""

SCHEME = "sha256-128/v1"
"""The digest: SHA-256 cut to 128 bits (SHA-256 runs at about twice BLAKE2b's speed on CPUs
with SHA instructions: 880 vs 465 MB/s measured here). A record of another scheme (or chunk
size) cannot be compared, and is treated like a record that has none (accepted, replaced)."""

_SHOWN = 3
"""Changed files an error names before saying how many more."""


class _Chunk:
    """The hashers of one chunk of rows: one per (role, stream), fed in row order."""

    def __init__(self) -> None:
        self._streams: dict[str, Any] = {}

    def feed(self, stream: str, data: np.ndarray) -> None:
        """Hash ``data`` (a contiguous array, read in place) onto ``stream``."""
        hasher = self._streams.get(stream)
        if hasher is None:
            hasher = self._streams[stream] = hashlib.sha256()
        hasher.update(data.data)

    def digest(self) -> str:
        """The chunk's digest: its streams' digests, by name."""
        whole = hashlib.sha256()
        for stream in sorted(self._streams):
            whole.update(stream.encode() + b"\x00" + self._streams[stream].digest())
        return whole.hexdigest()[:32]


def _valid(column: pa.Array) -> np.ndarray:
    """Each row's validity, from the bitmap (pyarrow.compute, ~30 ms to import, is not needed)."""
    n = len(column)
    if pa.types.is_null(column.type):
        return np.zeros(n, dtype=bool)
    bitmap = column.buffers()[0]
    if column.null_count == 0 or bitmap is None:
        return np.ones(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[column.offset : column.offset + n].astype(bool)


def _feed_text(chunk: _Chunk, role: str, column: pa.Array) -> None:
    """Each row's UTF-8 length (-1 for null) and bytes, whatever the offsets' width or start."""
    n = len(column)
    if pa.types.is_null(column.type):
        chunk.feed(f"{role}.len", np.full(n, -1, dtype="<i8"))
        return
    if pa.types.is_integer(column.type):  # keyed by its text: 7 and "7" are one id
        column = column.cast(pa.large_string())
    width = "<i8" if pa.types.is_large_string(column.type) else "<i4"
    offsets = np.frombuffer(column.buffers()[1], dtype=width)[column.offset : column.offset + n + 1].astype("<i8")
    lengths = np.diff(offsets)
    data = column.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]] if data is not None else np.empty(0, np.uint8)
    if column.null_count:
        valid = _valid(column)
        raw = raw[np.repeat(valid, lengths)]  # a null slot's bytes are undefined: never hash them
        lengths = np.where(valid, lengths, -1)
    chunk.feed(f"{role}.len", lengths.astype("<i8"))
    chunk.feed(f"{role}.data", raw)


def _feed_target(chunk: _Chunk, column: pa.Array) -> None:
    """Each row's validity, and its value as int64 (0 where null; a boolean as 0/1)."""
    n = len(column)
    valid = _valid(column)
    if pa.types.is_null(column.type):
        values = np.zeros(n, dtype="<i8")
    elif pa.types.is_boolean(column.type):
        bits = np.unpackbits(np.frombuffer(column.buffers()[1], dtype=np.uint8), bitorder="little")
        values = bits[column.offset : column.offset + n].astype("<i8")
    else:
        typed = np.frombuffer(column.buffers()[1], dtype=column.type.to_pandas_dtype())
        values = typed[column.offset : column.offset + n].astype("<i8")
    values[~valid] = 0
    chunk.feed("target.valid", valid.astype(np.uint8))
    chunk.feed("target.value", values)


def _chunks(start: int, rows: int, chunk_rows: int) -> Iterator[tuple[int, int, int]]:
    """``(chunk, offset, length)``: the slices of a batch of ``rows`` rows, first row ``start``
    of its file, that fall in one chunk each."""
    offset = 0
    while offset < rows:
        index = start + offset
        chunk = index // chunk_rows
        take = min(rows - offset, (chunk + 1) * chunk_rows - index)
        yield chunk, offset, take
        offset += take


class _FileDigest:
    """The chunk digests of one file, the current chunk still open."""

    def __init__(self, file: InputFile) -> None:
        self.file = file
        self.rows = 0
        self.chunks: list[str] = []
        self._open: _Chunk | None = None

    def add(self, chunk_index: int, batch: pa.RecordBatch) -> None:
        """Fold in rows of chunk ``chunk_index`` (rows arrive in order, chunk after chunk)."""
        if chunk_index > len(self.chunks):
            self.close()
        if self._open is None:
            self._open = _Chunk()
        for role in LOGICAL_COLUMNS:
            if role in batch.column_names:
                column = batch.column(role)
                if role == "target":
                    _feed_target(self._open, column)
                else:
                    _feed_text(self._open, role, column)
        self.rows += batch.num_rows

    def close(self) -> None:
        if self._open is not None:
            self.chunks.append(self._open.digest())
            self._open = None


class InputDigest:
    """The content fingerprint of ``source``: :meth:`update` with every batch of one pass
    (``Source.arrow_batches``), then :meth:`record`."""

    def __init__(self, source: Source, chunk_rows: int | None = None) -> None:
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self._files = {file: _FileDigest(file) for file in source.files}

    def update(self, file: InputFile, start: int, batch: pa.RecordBatch) -> None:
        """Fold in ``batch`` (columns named by role), whose first row is row ``start`` of ``file``."""
        digest = self._files[file]
        for chunk, offset, take in _chunks(start, batch.num_rows, self.chunk_rows):
            digest.add(chunk, batch.slice(offset, take))

    def record(self) -> dict[str, Any]:
        """What ``run.json`` stores under ``inputs``::

            {"scheme": "sha256-128/v1", "chunk_rows": 65536,
             "files": [{"file": "pairs.parquet", "rows": 1000, "chunks": ["<32 hex>", ...]}]}
        """
        files = []
        for digest in self._files.values():
            digest.close()
            files.append({"file": digest.file.rel, "rows": digest.rows, "chunks": list(digest.chunks)})
        return {"scheme": SCHEME, "chunk_rows": self.chunk_rows, "files": files}


@dataclass(frozen=True, slots=True)
class FileChange:
    """One input file whose rows differ from what the run read before."""

    path: str
    index: int
    """The file's position in the source's files."""
    chunks: tuple[int, ...]
    """The file's chunks (as it is now) whose rows are no longer the ones judged."""
    differing: int
    """Chunk digests that differ, counting chunks the file lost or gained..."""
    of: int
    """...of this many (the file's chunks before or now, whichever are more)."""
    rows_before: int
    rows_now: int
    chunk_rows: int

    @property
    def rows_to_judge(self) -> int:
        """Rows of the changed chunks, as the file is now."""
        return sum(min(self.chunk_rows, self.rows_now - c * self.chunk_rows) for c in self.chunks)

    def describe(self) -> str:
        """``PATH changed since the run read it (...)``: which chunks, how many rows."""
        rows = f"{self.rows_now:,} rows now" + (
            f", {self.rows_before:,} before" if self.rows_before != self.rows_now else "")
        return (f"{self.path} changed since the run read it ({self.differing} of {self.of} chunk(s) of up to "
                f"{self.chunk_rows:,} rows differ, {self.rows_to_judge:,} rows to judge again; {rows})")


def input_changes(stored: object, current: Mapping[str, Any], source: Source) -> list[FileChange]:
    """The files of ``source`` whose digests in ``current`` differ from ``stored`` (a run.json's
    ``inputs``). A record that is missing, of another scheme or chunk size, or of other files
    (the run's settings fingerprint names the files and refuses a change) compares as no change."""
    if not isinstance(stored, Mapping) or stored.get("scheme") != current["scheme"]:
        return []
    if stored.get("chunk_rows") != current["chunk_rows"]:
        return []
    before, now = stored.get("files"), current["files"]
    if not isinstance(before, list) or not all(isinstance(b, Mapping) for b in before):
        return []
    if [b.get("file") for b in before] != [n["file"] for n in now]:
        return []
    changes = []
    for index, (old, new) in enumerate(zip(before, now, strict=True)):
        old_chunks, new_chunks = list(old.get("chunks") or []), list(new["chunks"])
        if old_chunks == new_chunks and old.get("rows") == new["rows"]:
            continue
        changed = tuple(i for i, digest in enumerate(new_chunks) if i >= len(old_chunks) or old_chunks[i] != digest)
        differing = len(changed) + max(0, len(old_chunks) - len(new_chunks))
        changes.append(FileChange(str(source.files[index].path), index, changed, differing,
                                  max(len(old_chunks), len(new_chunks)), int(old.get("rows") or 0),
                                  int(new["rows"]), int(current["chunk_rows"])))
    return changes


def changed_inputs_error(changes: Sequence[FileChange]) -> InputError:
    """The one-line refusal of a resume whose inputs changed."""
    shown = "; ".join(c.describe() for c in changes[:_SHOWN])
    more = f"; and {len(changes) - _SHOWN} more file(s)" if len(changes) > _SHOWN else ""
    return InputError(
        f"{shown}{more}: its results may not match its rows, so nothing was sent; pass --allow-changed-inputs "
        "to judge the rows of the changed chunks again, or --overwrite to start over"
    )


def kept_keys(source: Source, changes: Sequence[FileChange]) -> np.ndarray:
    """Sorted hashes of the row keys in chunks that did not change: the results to keep.

    A result whose key is not among them belongs to a changed chunk, or to a row the input no
    longer has (a keyless row's key changes with its text), and is dropped to be judged again.
    Reads the input once more (only a resume with changed inputs pays for it).
    """
    changed = {c.index: set(c.chunks) for c in changes}
    chunk_rows = changes[0].chunk_rows if changes else CHUNK_ROWS
    index_of = {file: i for i, file in enumerate(source.files)}
    hashes: list[np.ndarray] = []
    for file, start, batch in source.arrow_batches():
        skip = changed.get(index_of[file], set())
        for chunk, offset, take in _chunks(start, batch.num_rows, chunk_rows):
            if chunk not in skip:
                rows = source_rows(batch.slice(offset, take), source.columns, file.rel, start + offset)
                hashes.append(key_hashes_in_order(r.row_id for r in rows))
    return key_hashes(()) if not hashes else np.unique(np.concatenate(hashes))
