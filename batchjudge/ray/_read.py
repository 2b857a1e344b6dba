"""The run's input as a Ray Data source: the project's own reader, one read task per file.

Each read task streams one input file with the project's
:class:`~batchjudge.engine.source.Source` (so every row gets the key the single-process run
gives it: its ``id``, else a hash of file, index and texts), drops the rows that already have
a result (the run directory's done-set, shipped once through the object store) and those past
``--limit``, and yields small blocks of :data:`~._columns.ROW_SCHEMA` rows, so that the
judging actors share the work instead of one of them getting a whole file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import ray
from ray.data.block import BlockMetadata
from ray.data.context import DataContext
from ray.data.datasource import Datasource, ReadTask

from batchjudge.engine.reader import pending_rows
from batchjudge.engine.source import Source
from batchjudge.ray._columns import rows_table

__all__ = ["PendingRows"]


class PendingRows(Datasource):
    """The rows of ``source`` with no result in ``done``, up to ``limit``, ``block_rows`` a block."""

    def __init__(self, source: Source, done: np.ndarray, limit: int | None, block_rows: int) -> None:
        self._source = source
        self._done = done
        self._limit = limit
        self._block_rows = block_rows

    def get_name(self) -> str:
        return "BatchjudgeInput"

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(file.size for file in self._source.files)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: DataContext | None = None
    ) -> list[ReadTask]:
        done = ray.put(self._done)
        tasks: list[ReadTask] = []
        first = 0
        for index, (file, rows) in enumerate(zip(self._source.files, self._source.rows, strict=True)):
            take = rows if self._limit is None else max(0, min(rows, self._limit - first))
            first += rows
            if take:
                read = functools.partial(_read, self._source.file(index), done, take, self._block_rows)
                meta = BlockMetadata(num_rows=None, size_bytes=file.size, exec_stats=None,
                                     input_files=(str(file.path),))
                tasks.append(ReadTask(read, meta))
        return tasks


def _read(source: Source, done_ref: ray.ObjectRef[np.ndarray], limit: int, block_rows: int) -> Iterator[pa.Table]:
    done: np.ndarray = ray.get(done_ref)
    for rows in pending_rows(source, done, limit, block_rows):
        if rows:
            yield rows_table(rows)
