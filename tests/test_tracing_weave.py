"""The Weave target, run through the real Weave client code against an in-process server.

``RecordingTraceServer`` answers Weave's client in memory and keeps every request, so the
tests read exactly what would be sent to W&B: no account, no network.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("weave")

from test_tracing import SENTINEL, read_jsonl, row
from weave.trace.context import weave_client_context

from batchjudge.adapters.tracing import make_tracer, trace_op
from batchjudge.adapters.tracing._jsonl import JsonlSink
from batchjudge.adapters.tracing._process import ProcessSink
from batchjudge.adapters.tracing._recording import RecordingTraceServer, client_for
from batchjudge.adapters.tracing._records import build_op_record
from batchjudge.core.scrub import Scrubber
from batchjudge.adapters.tracing._tracer import BackgroundTracer
from batchjudge.adapters.tracing._weave import WeaveSink


def recorded_calls(server: RecordingTraceServer) -> dict[str, dict[str, Any]]:
    """Calls by id: ``op`` (short op name), ``start`` and ``end`` requests."""
    calls: dict[str, dict[str, Any]] = {}
    for name, req in server.requests:
        if name == "call_start":
            start = req["start"]
            op = start["op_name"].rsplit("/", 1)[-1].split(":")[0]
            calls[start["id"]] = {"op": op, "start": start}
    for (
        name,
        req,
    ) in server.requests:  # Weave's threads may send an end before its start
        if name == "call_end":
            calls[req["end"]["id"]]["end"] = req["end"]
    return calls


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingTraceServer]:
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.delenv("WEAVE_DISABLED", raising=False)
    recording = RecordingTraceServer()
    yield recording
    weave_client_context.set_weave_client_global(None)


def recording_client(server: RecordingTraceServer) -> Any:
    """A client factory in place of ``weave.init``: the same client, in-process server."""
    return functools.partial(client_for, server)


def run_weave(
    server: RecordingTraceServer, rows: list[Any], summary: dict[str, Any]
) -> Any:
    sink = WeaveSink(
        "acme/judges",
        run_name="fib-large",
        run_config={
            "model": "mistral-large-latest",
            "prompt": "zero-shot",
            "inputs": ["data/fib-val.parquet"],
        },
        client_factory=recording_client(server),
    )

    async def run() -> dict[str, int]:
        tracer = BackgroundTracer(sink, run_name="fib-large", run_config={})
        for r in rows:
            tracer.submit(r)
        return await tracer.aclose(summary)

    return anyio.run(run)


def test_each_row_is_a_judge_call_inside_a_weave_evaluation(
    server: RecordingTraceServer,
) -> None:
    rows = [
        row(0),
        row(1),
        row(2, status="failed", verdict=None, error="HTTP 503", attempts=5),
    ]
    counters = run_weave(server, rows, {"n_rows": 3, "accuracy": 0.5})
    assert counters == {"sent": 3, "dropped": 0, "errors": 0, "sampled_out": 0}

    calls = recorded_calls(server)
    by_op: dict[str, list[dict[str, Any]]] = {}
    for call in calls.values():
        by_op.setdefault(call["op"], []).append(call)
    assert {op: len(c) for op, c in by_op.items()} == {
        "Evaluation.evaluate": 1,
        "Evaluation.predict_and_score": 3,
        "Model.predict": 3,
        "batchjudge.judge": 3,
        "Evaluation.summarize": 1,
    }
    assert all("end" in call for call in calls.values())  # every call was finished

    judged = sorted(
        by_op["batchjudge.judge"], key=lambda c: c["start"]["attributes"]["row_id"]
    )
    first = judged[0]
    assert calls[first["start"]["parent_id"]]["op"] == "Model.predict"
    assert first["start"]["inputs"]["messages"] == [
        {"role": "user", "content": "Judge document 0."}
    ]
    assert first["start"]["attributes"]["attempts"] == 1
    assert first["end"]["output"]["verdict"] == 1
    assert (
        first["end"]["summary"]["usage"]["mistral-large-latest"]["prompt_tokens"] == 120
    )
    started = dt.datetime.fromisoformat(str(first["start"]["started_at"]))
    ended = dt.datetime.fromisoformat(str(first["end"]["ended_at"]))
    assert (ended - started).total_seconds() == pytest.approx(0.25, abs=1e-3)
    assert "HTTP 503" in judged[2]["end"]["exception"]
    assert judged[2]["start"]["attributes"]["attempts"] == 5

    (evaluation,) = by_op["Evaluation.evaluate"]
    assert evaluation["start"]["display_name"] == "fib-large"
    objects = {
        req["obj"]["object_id"] for name, req in server.requests if name == "obj_create"
    }
    assert "fib-val.parquet" in objects  # runs on the same inputs compare in Weave
    output = evaluation["end"]["output"]
    assert output["output"]["accuracy"] == 0.5  # the engine's metrics
    assert output["output"]["trace_counters"]["sent"] == 3
    assert output["correct"]["true_count"] == 1  # per-row scores, summarised by Weave
    assert output["parsed"]["true_fraction"] == pytest.approx(2 / 3)
    usage = evaluation["end"]["summary"]["usage"]["mistral-large-latest"]
    assert usage["requests"] == 3 and usage["completion_tokens"] == 24


def test_no_api_key_reaches_a_weave_payload(
    server: RecordingTraceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", SENTINEL)
    monkeypatch.setenv("WANDB_API_KEY", SENTINEL[::-1])
    rows = [row(0, status="failed", error=f"401 Unauthorized for {SENTINEL}"), row(1)]
    run_weave(server, rows, {"note": f"{SENTINEL[::-1]}"})
    payload = json.dumps(server.requests, default=str)
    assert "Judge document 1." in payload
    assert SENTINEL not in payload and SENTINEL[::-1] not in payload


def test_trace_op_logs_a_fine_tuning_step_as_a_weave_call(
    server: RecordingTraceServer,
) -> None:
    recording_client(server)(
        "acme/judges"
    )  # an active client for the project is reused
    with trace_op(
        "weave:acme/judges", "batchjudge.finetune.export", {"rows": 10}
    ) as op:
        op.output = {"train_lines": 8, "validation_lines": 2}
    (call,) = recorded_calls(server).values()
    assert call["op"] == "batchjudge.finetune.export"
    assert call["start"]["inputs"] == {"rows": 10}
    assert call["end"]["output"] == {"train_lines": 8, "validation_lines": 2}


@pytest.mark.timeout(60)
def test_the_public_weave_target_runs_offline_in_its_own_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEAVE_DISABLED", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")

    async def run() -> dict[str, int]:
        tracer = make_tracer(
            "weave:acme/judges", run_name="r", run_config={"model": "m"}
        )
        for i in range(50):
            tracer.submit(row(i))
        return await tracer.aclose({"n_rows": 50})

    assert anyio.run(run) == {"sent": 50, "dropped": 0, "errors": 0, "sampled_out": 0}


def _records(n: int) -> list[dict[str, Any]]:
    from batchjudge.adapters.tracing._records import build_call_record

    scrub = Scrubber([])
    return [
        build_call_record(row(i), run_name="r", ended_at=1e9, scrub=scrub)
        for i in range(n)
    ]


def test_a_sink_in_a_child_process_writes_what_it_would_write_in_thread(
    tmp_path: Path,
) -> None:
    records, evaluation = _records(20), {"type": "evaluation", "summary": {"n": 20}}
    in_thread = JsonlSink(tmp_path / "thread", "r")
    in_child = ProcessSink(
        {"kind": "local", "location": str(tmp_path / "child"), "run_name": "r"},
        finish_timeout=30,
        scrub=Scrubber([]),
    )
    for sink in (in_thread, in_child):
        sink.open()
        assert sink.write(records[:7]) == 0 and sink.write(records[7:]) == 0
        assert sink.finish(evaluation) == 0
    assert read_jsonl(tmp_path / "child" / "r.jsonl") == read_jsonl(
        tmp_path / "thread" / "r.jsonl"
    )


def test_a_child_that_cannot_open_its_sink_fails_every_record(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the trace directory should be")
    sink = ProcessSink(
        {"kind": "local", "location": str(tmp_path / "taken"), "run_name": "r"},
        finish_timeout=30,
        scrub=Scrubber([]),
    )
    sink.open()
    sink.write(_records(4))
    assert sink.finish({"type": "evaluation"}) == 5  # 4 rows + the evaluation


def test_a_child_that_dies_fails_everything_forwarded(tmp_path: Path) -> None:
    sink = ProcessSink(
        {"kind": "local", "location": str(tmp_path), "run_name": "r"},
        finish_timeout=30,
        scrub=Scrubber([]),
    )
    sink.open()
    sink.write(_records(3))
    assert sink._process is not None
    sink._process.kill()
    sink._process.wait()
    assert sink.finish({"type": "evaluation"}) == 4


@pytest.mark.timeout(60)
def test_weave_in_the_child_process_logs_every_row(tmp_path: Path) -> None:
    sink = ProcessSink(
        {
            "kind": "weave",
            "location": "acme/judges",
            "run_name": "r",
            "run_config": {"model": "m"},
            "client_factory": "batchjudge.adapters.tracing._recording:counting_client",
        },
        finish_timeout=30,
        scrub=Scrubber([]),
    )

    async def run() -> dict[str, int]:
        tracer = BackgroundTracer(sink, run_name="r", run_config={})
        for i in range(40):
            tracer.submit(row(i))
        return await tracer.aclose({"n_rows": 40})

    assert anyio.run(run) == {"sent": 40, "dropped": 0, "errors": 0, "sampled_out": 0}


@pytest.mark.timeout(
    20
)  # a child blocked on the prompt would keep finish() waiting 60 s
def test_a_login_prompt_in_the_child_cannot_eat_the_protocol_or_hang(
    tmp_path: Path,
) -> None:
    # ``input`` stands for ``weave.init`` asking for credentials on stdin.
    sink = ProcessSink(
        {
            "kind": "weave",
            "location": "acme/judges",
            "run_name": "r",
            "run_config": {},
            "client_factory": "builtins:input",
        },
        finish_timeout=60,
        scrub=Scrubber([]),
    )
    sink.open()
    sink.write(_records(3))
    assert (
        sink.finish({"type": "evaluation"}) == 4
    )  # failed at once: 3 rows + evaluation


def test_ops_in_the_child_process_are_logged_as_calls() -> None:
    sink = ProcessSink(
        {
            "kind": "weave_ops",
            "location": "acme/judges",
            "client_factory": "batchjudge.adapters.tracing._recording:counting_client",
        },
        finish_timeout=30,
        scrub=Scrubber([]),
    )
    record = build_op_record(
        name="batchjudge.finetune.launch",
        inputs={"model": "open-mistral-7b"},
        output=None,
        error="410 Gone",
        started_at=1e9,
        ended_at=1e9 + 1,
        scrub=Scrubber([]),
    )
    sink.open()
    sink.write([record])
    assert sink.finish({}) == 0


def test_trace_op_to_weave_runs_offline_without_a_client_of_the_callers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEAVE_DISABLED", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    with trace_op("weave:acme/judges", "batchjudge.finetune.export", {"rows": 3}) as op:
        op.output = {"lines": 3}
    assert op.output == {"lines": 3}
    assert not [r for r in caplog.records if "could not trace" in r.getMessage()]
