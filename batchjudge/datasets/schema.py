"""The one schema every batchjudge dataset is written in, and the stable ids its rows carry.

Every loader (FIB, USB, the shipped sample, the synthetic generator) produces a table with
exactly these leading columns, so that ``batchjudge run``, the sanity check and the
fine-tune exporter read any of them without a column mapping::

    id          string  stable row id (the engine's row key)
    doc_id      string  the source document; splits never put one doc_id on both sides
    premise     string  the document
    hypothesis  string  the summary judged against it
    target      int8    1 consistent, 0 inconsistent
    source      string  where the row comes from: "fib-xsum", "usb", "sample", ...
    split       string  "train", "val", "test"

A dataset may carry extra columns after these (the sample's ``kind``), never fewer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pyarrow as pa

from batchjudge.errors import InputError

__all__ = [
    "CONSISTENT",
    "DATASET_COLUMNS",
    "DATASET_SCHEMA",
    "INCONSISTENT",
    "dataset_table",
    "row_ids",
    "stable_id",
    "with_split",
]

CONSISTENT = 1
INCONSISTENT = 0

DATASET_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("premise", pa.string(), nullable=False),
        pa.field("hypothesis", pa.string(), nullable=False),
        pa.field("target", pa.int8(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
    ]
)

DATASET_COLUMNS: tuple[str, ...] = tuple(DATASET_SCHEMA.names)


def stable_id(*parts: str, length: int = 16) -> str:
    """Hex digest of ``parts`` joined by a separator that cannot occur in text.

    Used for document ids of data that has none (hash of the premise) and for row ids
    (hash of doc id and hypothesis), so ids are the same on every machine and every run.
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16)
    return digest.hexdigest()[:length]


def row_ids(doc_ids: Sequence[str], hypotheses: Sequence[str]) -> list[str]:
    """Content ids for rows: ``stable_id(doc_id, hypothesis)``, unique within the list.

    The same (document, summary) pair gets the same id in every file it appears in, so
    mixed datasets keep their ids; a pair repeated within one list gets ``~2``, ``~3``...
    appended to its later copies, since the engine needs one key per row.
    """
    seen: dict[str, int] = {}
    out: list[str] = []
    for doc_id, hypothesis in zip(doc_ids, hypotheses, strict=True):
        base = stable_id(doc_id, hypothesis)
        count = seen.get(base, 0) + 1
        seen[base] = count
        out.append(base if count == 1 else f"{base}~{count}")
    return out


def dataset_table(
    *,
    ids: Sequence[str],
    doc_ids: Sequence[str],
    premises: Sequence[str],
    hypotheses: Sequence[str],
    targets: Sequence[int],
    source: str | Sequence[str],
    split: str | Sequence[str],
    extra: dict[str, pa.Array | Sequence[object]] | None = None,
) -> pa.Table:
    """Build a table in :data:`DATASET_SCHEMA` (plus ``extra`` columns after it).

    ``source`` and ``split`` may be one value for every row. Raises :class:`InputError`
    when the columns differ in length or a target is not 0/1.
    """
    n = len(ids)
    lengths = {len(doc_ids), len(premises), len(hypotheses), len(targets)}
    if lengths != {n}:
        raise InputError(f"dataset columns differ in length: {sorted(lengths | {n})}")
    bad = [t for t in targets if t not in (CONSISTENT, INCONSISTENT)]
    if bad:
        raise InputError(f"target must be 1 (consistent) or 0 (inconsistent), got {bad[0]!r}")
    sources = [source] * n if isinstance(source, str) else list(source)
    splits = [split] * n if isinstance(split, str) else list(split)
    arrays = [
        pa.array(ids, pa.string()),
        pa.array(doc_ids, pa.string()),
        pa.array(premises, pa.string()),
        pa.array(hypotheses, pa.string()),
        pa.array(targets, pa.int8()),
        pa.array(sources, pa.string()),
        pa.array(splits, pa.string()),
    ]
    table = pa.Table.from_arrays(arrays, schema=DATASET_SCHEMA)
    for name, values in (extra or {}).items():
        table = table.append_column(name, values if isinstance(values, pa.Array) else pa.array(values))
    return table


def with_split(table: pa.Table, split: str) -> pa.Table:
    """``table`` with its ``split`` column set to ``split`` on every row (unchanged without one)."""
    if "split" not in table.column_names:
        return table
    index = table.column_names.index("split")
    field = table.schema.field(index)
    return table.set_column(index, field, pa.array([split] * table.num_rows, field.type))
