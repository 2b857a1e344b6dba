"""Tracing specifications: off the hot path, never failing a run, sampling, local JSONL.

The weave target is specified in ``test_tracing_weave.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from batchjudge.adapters import tracing
from batchjudge.adapters.tracing import make_tracer, trace_op
from batchjudge.adapters.tracing._sampling import is_sampled
from batchjudge.adapters.tracing._tracer import BackgroundTracer
from batchjudge.core.results import FinishedRow, RowResult
from batchjudge.errors import ConfigError

SENTINEL = "sk-SENTINEL-never-in-a-trace-0123456789"


def row(i: int, **result: Any) -> FinishedRow:
    """A finished, labelled row as the engine submits it."""
    fields: dict[str, Any] = {
        "row_id": f"row-{i}",
        "status": "ok",
        "verdict": 1,
        "score": 0.9,
        "reason": "supported",
        "raw_response": '{"consistency": 1}',
        "error": None,
        "attempts": 1,
        "latency_ms": 250.0,
        "prompt_tokens": 120,
        "completion_tokens": 8,
        "model": "mistral-large-latest",
        "target": i % 2,
        "truncated_tokens": 0,
        **result,
    }
    return FinishedRow(
        RowResult(**fields),
        premise=f"Document {i}: the ferry left at 9 am.",
        hypothesis=f"Summary {i}: the ferry left at 9.",
        messages=({"role": "user", "content": f"Judge document {i}."},),
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class GatedSink:
    """A sink that cannot open until ``gate`` is set: a stalled trace backend."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.written: list[dict[str, Any]] = []
        self.evaluation: dict[str, Any] | None = None

    def open(self) -> None:
        self.gate.wait()

    def write(self, records: list[dict[str, Any]]) -> int:
        self.written.extend(records)
        return 0

    def finish(self, evaluation: dict[str, Any]) -> int:
        self.evaluation = evaluation
        return 0


class FailingSink:
    """A sink whose chosen steps raise, like a disk that is full or a server that is down."""

    def __init__(self, *, fail_open: bool = False, fail_write: bool = False) -> None:
        self.fail_open, self.fail_write = fail_open, fail_write
        self.finished = False

    def open(self) -> None:
        if self.fail_open:
            raise OSError(28, "No space left on device")

    def write(self, records: list[dict[str, Any]]) -> int:
        if self.fail_write:
            raise OSError(28, "No space left on device")
        return 0

    def finish(self, evaluation: dict[str, Any]) -> int:
        self.finished = True
        raise ConnectionError("trace server went away")


def test_public_surface_is_pinned() -> None:
    assert sorted(tracing.__all__) == ["OpTrace", "make_tracer", "trace_op"]


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "weave",
        "weave:",
        "weave:project-only",
        "weave:/p",
        "weave:e/",
        "weave:a/b/c",
        "local:",
        "s3:bucket/x",
        "wandb:e/p",
    ],
)
def test_a_bad_trace_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="--trace"):
        make_tracer(spec, run_name="r", run_config={})


def test_a_local_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create directory"):
        make_tracer(f"local:{blocker}/traces", run_name="r", run_config={})


@pytest.mark.parametrize("rate", [0.0, -0.5, 1.5])
def test_a_sample_rate_outside_zero_one_is_a_config_error(
    tmp_path: Path, rate: float
) -> None:
    with pytest.raises(ConfigError, match="--trace-sample"):
        make_tracer(f"local:{tmp_path}", sample_rate=rate, run_name="r", run_config={})


def test_local_writes_one_call_per_row_and_a_closing_evaluation(tmp_path: Path) -> None:
    async def run() -> dict[str, int]:
        tracer = make_tracer(
            f"local:{tmp_path}",
            run_name="fib-eval",
            run_config={"model": "mistral-large-latest"},
        )
        tracer.submit(row(0))
        tracer.submit(
            row(1, status="failed", verdict=None, error="HTTP 500", attempts=4)
        )
        return await tracer.aclose({"n_rows": 2, "accuracy": 0.5})

    counters = anyio.run(run)
    assert counters == {"sent": 2, "dropped": 0, "errors": 0, "sampled_out": 0}
    ok, failed, evaluation = read_jsonl(tmp_path / "fib-eval.jsonl")
    assert (
        ok["type"] == "call"
        and ok["op"] == "batchjudge.judge"
        and ok["run"] == "fib-eval"
    )
    assert ok["inputs"]["messages"] == [
        {"role": "user", "content": "Judge document 0."}
    ]
    assert ok["inputs"]["premise"].startswith("Document 0")
    assert (
        ok["output"]["verdict"] == 1
        and ok["output"]["raw_response"] == '{"consistency": 1}'
    )
    assert ok["output"]["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 8,
        "total_tokens": 128,
    }
    assert ok["latency_ms"] == 250.0 and ok["attempts"] == 1 and ok["status"] == "ok"
    assert ok["scores"] == {"parsed": True, "correct": False}  # target 0, verdict 1
    assert failed["status"] == "failed" and failed["error"] == "HTTP 500"
    assert failed["attempts"] == 4 and failed["scores"] == {"parsed": False}
    assert evaluation["type"] == "evaluation"
    assert evaluation["summary"] == {"n_rows": 2, "accuracy": 0.5}
    assert evaluation["config"] == {"model": "mistral-large-latest"}
    assert evaluation["trace_counters"]["sent"] == 2


def test_a_call_spans_the_rows_real_latency(tmp_path: Path) -> None:
    async def run() -> None:
        tracer = make_tracer(f"local:{tmp_path}", run_name="r", run_config={})
        tracer.submit(row(0, latency_ms=1500.0))
        await tracer.aclose()

    anyio.run(run)
    call = read_jsonl(tmp_path / "r.jsonl")[0]
    span = datetime.fromisoformat(call["ended_at"]) - datetime.fromisoformat(
        call["started_at"]
    )
    assert span.total_seconds() == pytest.approx(1.5, abs=1e-3)


def test_a_resumed_run_appends_to_the_same_file(tmp_path: Path) -> None:
    async def run(first: int, last: int) -> None:
        tracer = make_tracer(f"local:{tmp_path}", run_name="my run/1", run_config={})
        for i in range(first, last):
            tracer.submit(row(i))
        await tracer.aclose()

    anyio.run(run, 0, 3)
    anyio.run(run, 3, 5)
    (path,) = tmp_path.iterdir()
    assert path.name == "my_run_1.jsonl"
    kinds = [r["type"] for r in read_jsonl(path)]
    assert kinds == ["call"] * 3 + ["evaluation"] + ["call"] * 2 + ["evaluation"]


@pytest.mark.timeout(20)
def test_a_full_queue_drops_and_counts_without_ever_blocking_submit() -> None:
    sink = GatedSink()

    async def run() -> dict[str, int]:
        tracer = BackgroundTracer(sink, run_name="r", run_config={}, queue_size=4)
        for i in range(100):  # the sink is stalled: would hang here if submit blocked
            tracer.submit(row(i))
        assert tracer.counters()["dropped"] == 96
        sink.gate.set()
        return await tracer.aclose({})

    counters = anyio.run(run)
    assert counters == {"sent": 4, "dropped": 96, "errors": 0, "sampled_out": 0}
    assert [r["row_id"] for r in sink.written] == [f"row-{i}" for i in range(4)]


@pytest.mark.timeout(20)
def test_a_stalled_sink_cannot_hold_the_run_past_the_close_timeout() -> None:
    sink = GatedSink()

    async def run() -> dict[str, int]:
        tracer = BackgroundTracer(
            sink, run_name="r", run_config={}, queue_size=10, close_timeout=0.2
        )
        for i in range(3):
            tracer.submit(row(i))
        return await tracer.aclose({})

    counters = anyio.run(run)
    sink.gate.set()
    assert counters["dropped"] == 3 and counters["sent"] == 0


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        (
            FailingSink(fail_open=True),
            {"sent": 0, "errors": 6},
        ),  # 5 rows + the evaluation
        (
            FailingSink(fail_write=True),
            {"sent": 0, "errors": 6},
        ),  # 5 rows + the evaluation
        (FailingSink(), {"sent": 5, "errors": 1}),  # only the evaluation failed
    ],
)
def test_a_failing_sink_is_counted_never_raised(
    sink: FailingSink, expected: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> dict[str, int]:
        tracer = BackgroundTracer(sink, run_name="r", run_config={})
        for i in range(5):
            tracer.submit(row(i))
        return await tracer.aclose({"n_rows": 5})

    counters = anyio.run(run)
    assert {k: counters[k] for k in expected} == expected
    assert counters["dropped"] == 0
    assert (
        len([r for r in caplog.records if r.name.endswith("_tracer")]) == 1
    )  # warned once


def test_sampling_is_a_pure_function_of_row_id_close_to_the_rate() -> None:
    ids = [f"row-{i}" for i in range(20_000)]
    chosen = [i for i in ids if is_sampled(i, 0.25)]
    assert chosen == [i for i in ids if is_sampled(i, 0.25)]
    assert 0.23 < len(chosen) / len(ids) < 0.27
    assert set(chosen) <= {
        i for i in ids if is_sampled(i, 0.5)
    }  # nested: more rate, superset
    assert all(is_sampled(i, 1.0) for i in ids[:100])


def test_sampling_does_not_depend_on_the_process_hash_seed() -> None:
    ids = [f"row-{i}" for i in range(200)]
    code = (
        "from batchjudge.adapters.tracing._sampling import is_sampled;"
        "print(''.join('1' if is_sampled(f'row-{i}', 0.3) else '0' for i in range(200)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert other == "".join("1" if is_sampled(i, 0.3) else "0" for i in ids)


def test_a_resumed_run_traces_the_same_sampled_rows(tmp_path: Path) -> None:
    async def run(directory: Path) -> dict[str, int]:
        tracer = make_tracer(
            f"local:{directory}", sample_rate=0.3, run_name="r", run_config={}
        )
        for i in range(500):
            tracer.submit(row(i))
        return await tracer.aclose()

    first, second = anyio.run(run, tmp_path / "a"), anyio.run(run, tmp_path / "b")
    traced = [
        [r["row_id"] for r in read_jsonl(d / "r.jsonl") if r["type"] == "call"]
        for d in (tmp_path / "a", tmp_path / "b")
    ]
    assert (
        traced[0]
        == traced[1]
        == [f"row-{i}" for i in range(500) if is_sampled(f"row-{i}", 0.3)]
    )
    assert first["sampled_out"] == second["sampled_out"] == 500 - len(traced[0])


def test_no_api_key_reaches_a_local_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", SENTINEL)
    monkeypatch.setenv("WANDB_API_KEY", SENTINEL[::-1])

    async def run() -> None:
        tracer = make_tracer(
            f"local:{tmp_path}",
            run_name="r",
            run_config={
                "model": "m",
                "api_key": "a-key-passed-by-mistake",
                "headers": {"Authorization": "Bearer a-bearer-passed-by-mistake"},
            },
        )
        tracer.submit(row(0, status="failed", error=f"401 for key {SENTINEL}"))
        tracer.submit(row(1, raw_response=f"echo {SENTINEL[::-1]}"))
        await tracer.aclose({"note": f"key={SENTINEL}"})

    anyio.run(run)
    with trace_op(
        f"local:{tmp_path}", "batchjudge.finetune.launch", {"key": SENTINEL}
    ) as op:
        op.output = {"Authorization": f"Bearer {SENTINEL}"}
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in (
        SENTINEL,
        SENTINEL[::-1],
        "a-key-passed-by-mistake",
        "a-bearer-passed",
    ):
        assert secret.encode() not in written
    assert b"[REDACTED]" in written and b"row-1" in written  # scrubbed, not emptied


def test_trace_op_records_output_or_error_and_never_changes_the_outcome(
    tmp_path: Path,
) -> None:
    spec = f"local:{tmp_path}"
    with trace_op(spec, "batchjudge.finetune.export", {"rows": 10}) as op:
        op.output = {"path": "train.jsonl", "lines": 10}
    with (
        pytest.raises(ValueError, match="no rows"),
        trace_op(spec, "batchjudge.finetune.launch", {"model": "open-mistral-7b"}),
    ):
        raise ValueError("no rows")
    export, launch = read_jsonl(tmp_path / "ops.jsonl")
    assert export["op"] == "batchjudge.finetune.export" and export["status"] == "ok"
    assert export["inputs"] == {"rows": 10} and export["output"]["lines"] == 10
    assert launch["status"] == "error" and launch["error"] == "ValueError: no rows"


def test_trace_op_swallows_a_tracing_failure(tmp_path: Path) -> None:
    spec = f"local:{tmp_path}"
    (tmp_path / "ops.jsonl").mkdir()  # the trace file cannot be opened
    with trace_op(spec, "batchjudge.finetune.export", {}) as op:
        op.output = 42
    assert op.output == 42
