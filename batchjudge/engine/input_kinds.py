"""What ``RunConfig(inputs=...)`` accepts, told apart once: paths, or a table in memory.

People bring a path, a few paths, a glob, or the frame they already hold. Accepted:

- a path string or :class:`os.PathLike` (a file, a directory of shards, a glob): one input,
  never iterated as characters;
- a list or tuple of them;
- a polars ``DataFrame`` or ``LazyFrame`` (collected), a pyarrow ``Table`` or ``dataset``
  (scanned in batches), a pandas ``DataFrame`` (its index left out).

Anything else is a :class:`TypeError` naming its type. A table in memory is read as one input
named :data:`MEMORY_NAME` (``<dataframe>``): its rows are keyed like a file's (the ``id``
column, else content and position under that name) and fingerprinted like a file's, so the
same frame resumes its run and an edited one is refused like an edited file. polars and
pandas are never imported here: an object is recognised by its class's module (and pyarrow
only once a table is read: ``RunConfig`` is imported by ``batchjudge --help``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

__all__ = ["MEMORY_NAME", "InMemory", "in_memory", "in_memory_kind", "input_names", "input_paths"]

MEMORY_NAME = "<dataframe>"
"""The stable name of a table given in memory: in its rows' keys, ``run.json`` and errors."""

_TABLES = frozenset({("polars", "DataFrame"), ("polars", "LazyFrame"), ("pandas", "DataFrame"), ("pyarrow", "Table")})
"""Tables accepted in memory, by (top-level module, class); and pyarrow's ``*Dataset`` classes."""
_ACCEPTED = ("a path (str or os.PathLike), a list of paths, a glob, a polars DataFrame or LazyFrame, "
             "a pyarrow Table or dataset, or a pandas DataFrame")


@dataclass(frozen=True, slots=True)
class InMemory:
    """A table given in memory, as Arrow: a table, or a dataset scanned batch by batch."""

    data: pa.Table | ds.Dataset
    kind: str
    """What the caller passed (``polars.DataFrame``...), for messages."""

    @property
    def schema(self) -> pa.Schema:
        """The columns and their Arrow types (polars' text as ``string_view``)."""
        return self.data.schema

    def count_rows(self) -> int:
        """Rows of the table (a dataset counts them from its fragments)."""
        return self.data.num_rows if in_memory_kind(self.data) == "pyarrow.Table" else int(self.data.count_rows())

    def batches(self, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        """Record batches of ``columns``, at most ``batch_size`` rows each, text as large strings."""
        import pyarrow as pa

        if isinstance(self.data, pa.Table):
            batches = self.data.select(columns).to_batches(max_chunksize=batch_size)
        else:
            batches = self.data.to_batches(columns=columns, batch_size=batch_size)
        return (_plain_text(b) for b in batches)


def _plain_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with string views (polars' text) cast to large strings, which the engine and
    the content fingerprint read; other batches as they are."""
    import pyarrow as pa

    if not any(pa.types.is_string_view(f.type) for f in batch.schema):
        return batch
    schema = pa.schema([f.with_type(pa.large_string()) if pa.types.is_string_view(f.type) else f for f in batch.schema])
    return batch.cast(schema)


def _family(obj: object) -> tuple[str, str]:
    """``(top-level module, class name)`` of ``obj``'s type (``("polars", "DataFrame")``)."""
    kind = type(obj)
    return kind.__module__.split(".")[0], kind.__name__


def in_memory_kind(inputs: object) -> str | None:
    """``polars.DataFrame``... when ``inputs`` is an accepted table in memory (nothing converted)."""
    module, name = _family(inputs)
    if (module, name) in _TABLES or (module == "pyarrow" and name.endswith("Dataset")):
        return f"{module}.{name}"
    return None


def in_memory(inputs: object) -> InMemory | None:
    """``inputs`` as an :class:`InMemory` table when it is one of the accepted tables, else None."""
    kind = in_memory_kind(inputs)
    data: Any = inputs
    if kind is None:
        return None
    if kind == "polars.LazyFrame":
        data = inputs.collect().to_arrow()  # type: ignore[attr-defined]
    elif kind == "polars.DataFrame":
        data = inputs.to_arrow()  # type: ignore[attr-defined]
    elif kind == "pandas.DataFrame":
        import pyarrow as pa

        data = pa.Table.from_pandas(inputs, preserve_index=False)
    return InMemory(data, kind)


def input_paths(inputs: object) -> list[str | os.PathLike[str]]:
    """The paths ``inputs`` names (one path, or a list or tuple of them); TypeError naming the
    type of anything else (a table in memory is for :func:`in_memory`)."""
    if isinstance(inputs, (str, os.PathLike)):
        return [inputs]
    if isinstance(inputs, Sequence) and not isinstance(inputs, (bytes, bytearray)):
        for item in inputs:
            if not isinstance(item, (str, os.PathLike)):
                alone = "; give the table alone, not in a list" if in_memory_kind(item) else f"; give {_ACCEPTED}"
                raise TypeError(f"inputs: a list of paths holds a {type(item).__module__}.{type(item).__qualname__}"
                                + alone)
        return list(inputs)
    raise TypeError(f"inputs: cannot read a {type(inputs).__module__}.{type(inputs).__qualname__}; give {_ACCEPTED}")


def input_names(inputs: object) -> list[str]:
    """What ``run.json`` and the fingerprint call the inputs: the paths as given, or
    :data:`MEMORY_NAME` for a table in memory."""
    if in_memory_kind(inputs) is not None:
        return [MEMORY_NAME]
    return [os.fspath(p) for p in input_paths(inputs)]
