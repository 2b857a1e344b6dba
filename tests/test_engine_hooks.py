"""The engine's hooks for a distributed engine: a row stream keyed by content, and an
:class:`~batchjudge.engine.pipeline.Engine` that judges elsewhere but feeds the same sink."""

from __future__ import annotations

import anyio
import polars as pl
import pyarrow as pa
from anyio.streams.memory import MemoryObjectSendStream

import batchjudge
from batchjudge.core.results import FinishedRow
from batchjudge.engine.pipeline import execute, plan_run
from batchjudge.engine.reader import Reader, pending_rows
from batchjudge.engine.source import parse_columns, source_rows
from batchjudge.engine.stats import RunStats
from batchjudge.ray._limiter import SharedLimiter
from batchjudge.ray._worker import JudgeWorker


def test_rows_of_a_stream_are_keyed_by_content_and_their_problems_name_no_row_number():
    table = pa.table({"premise": ["a doc", "a doc", None], "hypothesis": ["a claim", "a claim", "x"]})
    rows = source_rows(table, parse_columns(None), "dataset", None)
    assert rows[0].row_id == rows[1].row_id != rows[2].row_id
    assert rows[2].problem == "dataset: null 'premise' (premise)"
    placed = source_rows(table, parse_columns(None), "f.parquet", 10)
    assert placed[0].row_id != placed[1].row_id and placed[2].problem == "f.parquet row 12: null 'premise' (premise)"


class InProcessEngine:
    """Judges the reader's pending rows with the distributed engine's worker, in this process."""

    def __init__(self, config: batchjudge.RunConfig) -> None:
        self.config = config
        self.fed = 0

    async def feed(self, reader: Reader, stats: RunStats, outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        worker = JudgeWorker(self.config, [SharedLimiter(concurrency=8)], workers=1, keyed=True)
        async with outbox, anyio.create_task_group() as group:  # an engine closes its outbox when done
            group.start_soon(worker.run_limits)
            for rows in pending_rows(reader.source, reader.done, reader.limit, 16):
                for result in await worker.judge_rows(rows):
                    assert result is not None  # nothing stops this run
                    self.fed += 1
                    await outbox.send(FinishedRow(result))
            group.cancel_scope.cancel()
        await worker.aclose()

    async def stop(self, grace: float) -> None:
        """Nothing to stop: these runs are never asked to."""


def test_an_engine_feeds_the_same_run_directory_and_resumes_like_the_process_run(write_pairs, tmp_path):
    data = write_pairs(50)
    first = batchjudge.RunConfig(inputs=[data], out=tmp_path / "engine", limit=30, flush_rows=10)
    engine = InProcessEngine(first)
    assert anyio.run(lambda: execute(plan_run(first), engine=engine)).complete and engine.fed == 30
    rest = batchjudge.RunConfig(inputs=[data], out=tmp_path / "engine", flush_rows=10)
    engine = InProcessEngine(rest)
    result = anyio.run(lambda: execute(plan_run(rest), engine=engine))
    assert result.complete and engine.fed == 20  # the 30 committed rows were not fed again
    single = batchjudge.run(batchjudge.RunConfig(inputs=[data], out=tmp_path / "single"))
    same = ["row_id", "status", "verdict", "score", "reason", "attempts", "target"]
    assert (pl.read_parquet(tmp_path / "engine" / "results" / "*.parquet").sort("row_id").select(same)
            .equals(pl.read_parquet(f"{single.run_dir}/results/*.parquet").sort("row_id").select(same)))
