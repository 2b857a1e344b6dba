"""Batch mode (``batchjudge run --mode batch``): the same rows and results through Mistral's
batch inference API instead of one request per row.

::

    reader ──► requests ──► RUN_DIR/batch/chunk-NNNNN.jsonl ──► upload ──► batch job ──┐
      │        (same prompt adapter, same body as online)                               │ poll
      │                                                                                 ▼
      └──── rows that fail alone ──────────────────────────► writer ◄── parse output + error files

:class:`BatchJudge` is the judge step of batch mode: it takes the same work from the same
reader as online mode (:class:`~batchjudge.engine.judge.OnlineJudge`), builds each result
with the same functions (:mod:`~batchjudge.engine.outcomes`) and hands it to the same sink, so
a batch run writes exactly the result parts an online run writes. Rows are written to chunk files (``{"custom_id": row key,
"body": chat request}`` lines) cut under :data:`LIMITS` (rows and bytes per job), each with a
``.rows.jsonl`` sidecar (row key, target, cut tokens), both deleted once the job's answers
are written. Within a chunk, a request identical to an earlier one
(:func:`~batchjudge.engine.dedupe.request_key`) is not written again: its sidecar line names
the row whose answer it reuses (``same_as``), and its result has ``attempts`` 0 and no tokens. ``RUN_DIR/batch/jobs.json`` records
every chunk before it is uploaded and its job id as soon as the job exists, so a resumed run
submits the chunks that have no job yet, polls the jobs still running, and never sends their
rows again; answers already in the results are not written twice.

Files and jobs go through the package's one API client
(:class:`~batchjudge.adapters.mistral.ApiClient`: ``POST /v1/files``, ``POST /v1/batch/jobs``,
``GET /v1/batch/jobs/{id}``, ``GET /v1/files/{id}/content``), its errors translated like every
other call's. A rejected key stops the run (exit 2); a failed upload or create stops it too
(:class:`~batchjudge.engine.retry.StopRun`), and the same command resumes it. File work runs
in worker threads, never on the event loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchjudge.adapters.mistral import ApiClient, error_for_status, reply_from_payload, request_body
from batchjudge.core.results import FinishedRow, RowResult
from batchjudge.engine.checkpoint import key_hashes_in_order
from batchjudge.engine.dedupe import request_key
from batchjudge.engine.outcomes import answered_result, failed_result
from batchjudge.engine.reader import Work
from batchjudge.engine.retry import StopRun
from batchjudge.engine.stats import RunStats
from batchjudge.errors import ConfigError, ProviderError, TransientError

__all__ = ["BATCH_DIR", "LIMITS", "BatchJudge", "BatchLimits", "jobs_pending", "rows_in_flight"]

BATCH_DIR = "batch"
_STATE = "jobs.json"
_ENDPOINT = "/v1/chat/completions"
_FINISHED = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})


@dataclass(frozen=True)
class BatchLimits:
    """How big one batch job may be, and how often jobs are polled."""

    max_rows: int = 50_000
    max_bytes: int = 100 * 1024 * 1024
    """Well under the API's 512 MB per file."""
    poll_seconds: float = 10.0


LIMITS = BatchLimits()
"""The limits batch runs use."""


# --- the run directory's record of chunks and jobs -------------------------------------------


@dataclass
class _Entry:
    """One chunk of requests and the batch job that answers it."""

    chunk: str
    rows: int
    job_id: str | None = None
    status: str = "WRITTEN"
    collected: bool = False


class _Book:
    """``RUN_DIR/batch/jobs.json``: every chunk and job, rewritten atomically on each change."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.entries: list[_Entry] = []
        state = folder / _STATE
        if state.is_file():
            try:
                self.entries = [_Entry(**e) for e in orjson.loads(state.read_bytes())["jobs"]]
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise ConfigError(f"{state}: unreadable batch job record ({exc})") from exc

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / _STATE
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps({"jobs": [asdict(e) for e in self.entries]}, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)

    def pending(self) -> list[_Entry]:
        return [e for e in self.entries if not e.collected]

    def rows_of(self, entry: _Entry) -> list[dict[str, Any]]:
        path = self.folder / f"{entry.chunk}.rows.jsonl"
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]

    def discard(self, entry: _Entry) -> None:
        """Delete a collected chunk's files (its requests repeat the documents)."""
        for suffix in (".jsonl", ".rows.jsonl"):
            (self.folder / f"{entry.chunk}{suffix}").unlink(missing_ok=True)

    def in_flight(self) -> list[str]:
        """Row keys of chunks not collected yet: a resumed run must not send them again."""
        return [row["row_id"] for entry in self.pending() for row in self.rows_of(entry)]


def rows_in_flight(run_dir: Path) -> list[str]:
    """Row keys in batch jobs an earlier session left unfinished in ``run_dir`` (read only)."""
    return _Book(run_dir / BATCH_DIR).in_flight()


def jobs_pending(run_dir: Path) -> int:
    """Chunks of ``run_dir`` whose answers are not written yet (read only)."""
    return len(_Book(run_dir / BATCH_DIR).pending())


class _Chunks:
    """Writes requests into chunk files, starting a new one at the limits (blocking I/O: its
    callers run it in a worker thread)."""

    def __init__(self, book: _Book, limits: BatchLimits, *, dedupe: bool = True) -> None:
        self.book = book
        self.limits = limits
        self.dedupe = dedupe
        self._requests: Any = None
        self._rows: Any = None
        self._entry: _Entry | None = None
        self._bytes = 0
        self._first: dict[int, str] = {}
        """Request key → the row of this chunk that sends it."""

    def add_all(self, items: list[Work], model: str) -> list[_Entry]:
        """Append requests; return the chunks that reached a limit (closed and recorded)."""
        return [closed for work in items if (closed := self.add(work, model)) is not None]

    def add(self, work: Work, model: str) -> _Entry | None:
        """Append one request (or, for a request identical to one in this chunk, only its row);
        return the chunk it closed, if it reached a limit."""
        if self._entry is None:
            self._open()
        assert self._entry is not None
        row: dict[str, Any] = {"row_id": work.row.row_id, "target": work.row.target, "truncated": work.truncated}
        key = request_key(work.request) if self.dedupe else None
        first = self._first.get(key) if key is not None else None
        if first is not None:
            row["same_as"] = first
        else:
            if key is not None:
                self._first[key] = work.row.row_id
            line = orjson.dumps({"custom_id": work.row.row_id, "body": request_body(work.request, model)}) + b"\n"
            self._requests.write(line)
            self._bytes += len(line)
        self._rows.write(orjson.dumps(row) + b"\n")
        self._entry.rows += 1
        if self._entry.rows >= self.limits.max_rows or self._bytes >= self.limits.max_bytes:
            return self.close()
        return None

    def _open(self) -> None:
        self.book.folder.mkdir(parents=True, exist_ok=True)
        name = f"chunk-{len(self.book.entries) + 1:05d}"
        self._requests = (self.book.folder / f"{name}.jsonl").open("wb")
        self._rows = (self.book.folder / f"{name}.rows.jsonl").open("wb")
        self._entry = _Entry(name, 0)
        self._bytes = 0
        self._first = {}

    def close(self) -> _Entry | None:
        """Close the open chunk (fsynced) and record it; ``None`` when none is open."""
        entry = self._entry
        if entry is None:
            return None
        for handle in (self._requests, self._rows):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        self._entry = None
        self.book.entries.append(entry)
        self.book.save()
        return entry


# --- the judge step ---------------------------------------------------------------------------


class BatchJudge:
    """Submits chunks of work as batch jobs, follows them and turns their answers into rows.

    ``run_dir`` holds the chunk files and ``jobs.json``; ``done`` are the key hashes of rows
    that had results before this session (answers for them are not written twice).
    """

    def __init__(
        self,
        client: ApiClient,
        run_dir: Path,
        stats: RunStats,
        *,
        model: str,
        done: np.ndarray,
        limits: BatchLimits | None = None,
        dedupe: bool = True,
    ) -> None:
        self.client = client
        self.stats = stats
        self.model = model
        self.dedupe = dedupe
        self.limits = limits or LIMITS
        self.book = _Book(run_dir / BATCH_DIR)
        self.already = done

    def in_flight(self) -> Iterable[str]:
        """Rows of jobs an earlier session submitted and this one will follow."""
        return self.book.in_flight()

    async def stop(self, grace: float) -> None:
        """Nothing to wait for: submitted jobs keep running server-side, and ``jobs.json``
        lets the next session follow them."""

    async def aclose(self) -> None:
        """Close the API client's session."""
        await self.client.aclose()

    async def run(self, inbox: MemoryObjectReceiveStream[Work], outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        """Chunk and submit everything from ``inbox``, then follow every job to its end."""
        async with outbox:
            try:
                await self._submit_all(inbox)
                await self._follow(outbox)
            except ProviderError as exc:  # jobs cannot be created or followed: stop, resumable
                raise StopRun(exc) from exc

    async def _submit(self, entry: _Entry) -> None:
        file_id = await self.client.upload_file(self.book.folder / f"{entry.chunk}.jsonl", purpose="batch")
        job = await self.client.create_batch_job(
            file_id, model=self.model, endpoint=_ENDPOINT, metadata={"client": "batchjudge"}
        )
        entry.job_id = str(job["id"])
        entry.status = "QUEUED"
        await anyio.to_thread.run_sync(self.book.save)

    async def _submit_all(self, inbox: MemoryObjectReceiveStream[Work]) -> None:
        """Submit chunks left unsubmitted by an earlier session, then chunk and submit new work."""
        for entry in [e for e in self.book.pending() if e.job_id is None]:
            await self._submit(entry)
        chunks = _Chunks(self.book, self.limits, dedupe=self.dedupe)
        async with inbox:
            batch: list[Work] = []
            async for work in inbox:
                batch.append(work)
                if len(batch) >= 512:
                    for closed in await anyio.to_thread.run_sync(chunks.add_all, batch, self.model):
                        await self._submit(closed)
                    batch = []
        for closed in await anyio.to_thread.run_sync(chunks.add_all, batch, self.model):
            await self._submit(closed)
        last = await anyio.to_thread.run_sync(chunks.close)
        if last is not None:
            await self._submit(last)

    async def _follow(self, outbox: MemoryObjectSendStream[FinishedRow]) -> None:
        """Poll every uncollected job until each has finished and its rows are written."""
        while True:
            for entry in self.book.pending():
                assert entry.job_id is not None
                try:
                    job = await self.client.get_batch_job(entry.job_id)
                except TransientError:
                    continue  # the next round asks again
                entry.status = str(job.get("status"))
                self.stats.emulator = self.stats.emulator or self.client.emulator
                if entry.status in _FINISHED:
                    for result in await self._collect(entry, job):
                        await outbox.send(FinishedRow(result))
                    entry.collected = True
                    await anyio.to_thread.run_sync(self.book.save)
                    await anyio.to_thread.run_sync(self.book.discard, entry)
            if not self.book.pending():
                return
            await anyio.sleep(self.limits.poll_seconds)

    async def _collect(self, entry: _Entry, job: dict[str, Any]) -> list[RowResult]:
        """One result per row of the chunk: its answer, its error, or why none came."""
        answers: dict[str, Any] = {}
        for file_id in (job.get("output_file"), job.get("error_file")):
            if file_id:
                for line in (await self.client.download_file(str(file_id))).splitlines():
                    if line.strip():
                        answer = orjson.loads(line)
                        answers[str(answer.get("custom_id"))] = answer
        rows = await anyio.to_thread.run_sync(self.book.rows_of, entry)
        written = np.isin(key_hashes_in_order(r["row_id"] for r in rows), self.already)
        results = []
        for row, seen in zip(rows, written, strict=True):
            if seen:
                continue
            answer = answers.get(row.get("same_as") or row["row_id"])
            if answer is None:
                results.append(failed_result(
                    row["row_id"], row["target"],
                    f"BatchError: batch job {entry.job_id} ended {entry.status} without an answer for this row",
                    model=self.model, attempts=1, truncated=row["truncated"]))
            else:
                results.append(self._answered(row, answer))
        return results

    def _answered(self, row: dict[str, Any], answer: dict[str, Any]) -> RowResult:
        """The row's result from its answer line (another row's, when its request was the same)."""
        response = answer.get("response") or {}
        status = response.get("status_code")
        body = response.get("body")
        row_id, target, truncated = row["row_id"], row["target"], row["truncated"]
        if status != 200 or answer.get("error"):
            detail = body if body else answer.get("error") or ""
            error = error_for_status(int(status or 500), {}, detail if isinstance(detail, str) else orjson.dumps(detail))
            return failed_result(row_id, target, f"{type(error).__name__}: {error}", model=self.model,
                                 attempts=1, truncated=truncated)
        try:
            reply = reply_from_payload(body, {})
        except ProviderError as exc:
            return failed_result(row_id, target, f"{type(exc).__name__}: {exc}", model=self.model,
                                 attempts=1, truncated=truncated)
        if "same_as" in row:
            self.stats.reused += 1
            reply.prompt_tokens = reply.completion_tokens = 0
            return answered_result(row_id, target, [reply], model=self.model, attempts=0, truncated=truncated)
        self.stats.prompt_tokens += reply.prompt_tokens
        self.stats.completion_tokens += reply.completion_tokens
        return answered_result(row_id, target, [reply], model=self.model, attempts=1, truncated=truncated)
