"""Batch mode (``batchjudge run --mode batch``): the same rows and results through Mistral's
batch inference API instead of one request per row.

::

    reader ──► requests ──► RUN_DIR/batch/chunk-NNNNN.jsonl ──► upload ──► batch job ──┐
      │        (same prompt adapter, same body as online)                               │ poll
      │                                                                                 ▼
      └──── rows that fail alone ──────────────────────────► writer ◄── parse output + error files

The reader, the prompt adapter, the request body, the reply parser and the writer are the
online run's own (:mod:`batchjudge.engine.runner`), so a batch run writes exactly the result
parts an online run writes. Rows are written to chunk files (``{"custom_id": row key,
"body": chat request}`` lines) cut under :data:`LIMITS` (rows and bytes per job), each with a
``.rows.jsonl`` sidecar (row key, target, cut tokens), both deleted once the job's answers
are written. ``RUN_DIR/batch/jobs.json`` records
every chunk before it is uploaded and its job id as soon as the job exists, so a resumed run
submits the chunks that have no job yet, polls the jobs still running, and never sends their
rows again; answers already in the results are not written twice.

Files and jobs go through the official SDK (``client.files.upload_async``,
``client.batch.jobs.create_async`` / ``get_async``, ``client.files.download_async``); its
errors are translated like the online provider's. A rejected key stops the run (exit 2); a
failed upload or create stops it too, and the same command resumes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchjudge.adapters.parsing import parse_verdict
from batchjudge.engine.checkpoint import key_hash, key_hashes
from batchjudge.engine.providers._mistral_wire import (
    error_for_status,
    reply_from_payload,
    request_body,
)
from batchjudge.core.results import STATUS_FAILED
from batchjudge.engine.source import SourceRow
from batchjudge.engine.stats import RunStats
from batchjudge.errors import ConfigError, ProviderError, TransientError

if TYPE_CHECKING:
    from batchjudge.engine.runner import _Run, _Work

__all__ = ["BATCH_DIR", "LIMITS", "BatchLimits", "execute_batch"]

BATCH_DIR = "batch"
_STATE = "jobs.json"
_ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
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


# --- the SDK, its errors translated ---------------------------------------------------------


class _Client:
    """The SDK calls batch mode makes, each raising the project's errors."""

    def __init__(self, api_key: str | None, base_url: str | None, timeout: float) -> None:
        from mistralai.client import Mistral

        from batchjudge.engine.providers._mistral_wire import normalise_base_url

        key = api_key or os.environ.get("MISTRAL_API_KEY")
        if not key:
            raise ConfigError("--mode batch needs an API key: set MISTRAL_API_KEY")
        self._sdk = Mistral(api_key=key, server_url=normalise_base_url(base_url), retry_config=None,
                            timeout_ms=int(max(timeout, 60.0) * 1000))

    async def _call(self, what: str, call: Callable[[], Any]) -> Any:
        import httpx2
        from mistralai.client.errors import MistralError

        try:
            return await call()
        except MistralError as exc:
            error = error_for_status(exc.status_code, exc.headers, exc.body)
            raise type(error)(f"{what}: {error}", status=exc.status_code) from None
        except httpx2.HTTPError as exc:
            raise TransientError(f"{what}: connection error: {type(exc).__name__}: {exc}") from None

    async def upload(self, path: Path) -> str:
        from mistralai.client.models import FileTypedDict

        file: FileTypedDict = {"file_name": path.name, "content": await anyio.Path(path).read_bytes()}
        uploaded = await self._call(f"upload {path.name}", lambda: self._sdk.files.upload_async(file=file, purpose="batch"))
        return str(uploaded.id)

    async def create(self, file_id: str, model: str) -> str:
        job = await self._call("create batch job", lambda: self._sdk.batch.jobs.create_async(
            input_files=[file_id], endpoint=_ENDPOINT, model=model, metadata={"client": "batchjudge"}))
        return str(job.id)

    async def get(self, job_id: str) -> Any:
        return await self._call(f"batch job {job_id}", lambda: self._sdk.batch.jobs.get_async(job_id=job_id))

    async def download(self, file_id: str) -> bytes:
        response = await self._call(f"download {file_id}", lambda: self._sdk.files.download_async(file_id=file_id))
        data: bytes = await response.aread()
        return data


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


class _Chunks:
    """Writes requests into chunk files, starting a new one at the limits."""

    def __init__(self, book: _Book, limits: BatchLimits) -> None:
        self.book = book
        self.limits = limits
        self._requests: Any = None
        self._rows: Any = None
        self._entry: _Entry | None = None
        self._bytes = 0

    def add(self, work: _Work, model: str) -> _Entry | None:
        """Append one request; return the chunk it closed, if it reached a limit."""
        line = orjson.dumps({"custom_id": work.row.row_id, "body": request_body(work.request, model)}) + b"\n"
        if self._entry is None:
            self._open()
        assert self._entry is not None
        self._requests.write(line)
        self._rows.write(orjson.dumps({"row_id": work.row.row_id, "target": work.row.target,
                                       "truncated": work.truncated}) + b"\n")
        self._entry.rows += 1
        self._bytes += len(line)
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


# --- one batch run ------------------------------------------------------------------------------


class _BatchRun:
    """Submits chunks, follows their jobs and turns their answers into result rows."""

    def __init__(self, run: _Run, limits: BatchLimits) -> None:
        self.run = run
        self.limits = limits
        self.book = _Book(Path(run.run_dir.path) / BATCH_DIR)
        self.client = _Client(run.config.api_key, run.config.base_url, run.config.timeout)
        self.already = run.done
        """Row keys with results before this session: answers for them are not written twice."""

    async def submit(self, entry: _Entry) -> None:
        file_id = await self.client.upload(self.book.folder / f"{entry.chunk}.jsonl")
        entry.job_id = await self.client.create(file_id, self.run.model)
        entry.status = "QUEUED"
        self.book.save()

    async def write_chunks(self, inbox: MemoryObjectReceiveStream[_Work]) -> None:
        """Submit chunks left unsubmitted by an earlier session, then chunk and submit new rows."""
        for entry in [e for e in self.book.pending() if e.job_id is None]:
            await self.submit(entry)
        chunks = _Chunks(self.book, self.limits)
        async with inbox:
            async for work in inbox:
                closed = chunks.add(work, self.run.model)
                if closed is not None:
                    await self.submit(closed)
        last = chunks.close()
        if last is not None:
            await self.submit(last)

    async def follow(self, results: MemoryObjectSendStream[dict[str, Any]],
                     progress: Callable[[RunStats], None] | None) -> None:
        """Poll every uncollected job until each has finished and its rows are written."""
        while True:
            for entry in self.book.pending():
                assert entry.job_id is not None
                try:
                    job = await self.client.get(entry.job_id)
                except TransientError:
                    continue  # the next round asks again
                entry.status = str(job.status)
                if entry.status in _FINISHED:
                    for result in await self.collect(entry, job):
                        await results.send(result)
                    entry.collected = True
                    self.book.save()
                    self.book.discard(entry)
            if progress is not None:
                progress(self.run.stats)
            if not self.book.pending():
                return
            await anyio.sleep(self.limits.poll_seconds)

    async def collect(self, entry: _Entry, job: Any) -> list[dict[str, Any]]:
        """One result per row of the chunk: its answer, its error, or why none came."""
        answers: dict[str, Any] = {}
        for file_id in (job.output_file, job.error_file):
            if file_id:
                for line in (await self.client.download(file_id)).splitlines():
                    if line.strip():
                        answer = orjson.loads(line)
                        answers[str(answer.get("custom_id"))] = answer
        rows = self.book.rows_of(entry)
        seen = np.isin(np.fromiter((key_hash(r["row_id"]) for r in rows), np.uint64, len(rows)), self.already)
        results = []
        for row, written in zip(rows, seen, strict=True):
            if written:
                continue
            source_row = SourceRow(row["row_id"], None, None, row["target"])
            answer = answers.get(row["row_id"])
            if answer is None:
                results.append(self.run._result(
                    source_row, STATUS_FAILED, attempts=1, truncated=row["truncated"],
                    error=f"BatchError: batch job {entry.job_id} ended {entry.status} without an answer for this row"))
            else:
                results.append(self._answered(source_row, answer, row["truncated"]))
        return results

    def _answered(self, row: SourceRow, answer: dict[str, Any], truncated: int) -> dict[str, Any]:
        response = answer.get("response") or {}
        status = response.get("status_code")
        body = response.get("body")
        if status != 200 or answer.get("error"):
            detail = body if body else answer.get("error") or ""
            error = error_for_status(int(status or 500), {}, detail if isinstance(detail, str) else orjson.dumps(detail))
            return self.run._result(row, STATUS_FAILED, attempts=1, truncated=truncated,
                                    error=f"{type(error).__name__}: {error}")
        try:
            reply = reply_from_payload(body, {})
        except ProviderError as exc:
            return self.run._result(row, STATUS_FAILED, attempts=1, truncated=truncated,
                                    error=f"{type(exc).__name__}: {exc}")
        self.run.stats.prompt_tokens += reply.prompt_tokens
        self.run.stats.completion_tokens += reply.completion_tokens
        parsed = parse_verdict(reply.text)
        return self.run._result(
            row, parsed.status, verdict=parsed.verdict, score=parsed.score, reason=parsed.reason,
            raw=reply.text, error=parsed.error, attempts=1, prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens, model=reply.model or self.run.model, truncated=truncated,
        )


async def execute_batch(run: _Run, progress: Callable[[RunStats], None] | None, interval: float) -> None:
    """Judge the run's pending rows through batch jobs; the batch counterpart of online mode.

    ``interval`` is unused: progress is reported once per polling round.
    """
    del interval
    batch = _BatchRun(run, LIMITS)
    in_flight = batch.book.in_flight()
    if in_flight:  # rows of jobs from an earlier session: followed, not sent again
        run.done = np.union1d(run.done, key_hashes(in_flight))
    capacity = 256
    work_send, work_recv = anyio.create_memory_object_stream["_Work"](capacity)
    res_send, res_recv = anyio.create_memory_object_stream[dict[str, Any]](capacity)
    try:
        async with anyio.create_task_group() as outer:
            outer.start_soon(run.write, res_recv)
            async with res_send:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(run.read, work_send, res_send.clone())
                    tg.start_soon(batch.write_chunks, work_recv)
                await batch.follow(res_send, progress)
    except* ProviderError as group:  # stop as online mode does: the run reports it, resume goes on
        run.fatal = _first(group)


def _first(group: BaseExceptionGroup[ProviderError]) -> ProviderError:
    """The first error of a (possibly nested) exception group."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
