"""``weave:ENTITY/PROJECT``: each judged row as a call of batchjudge's own op, the run as a
Weave evaluation.

Weave's automatic Mistral patch does not work with mistralai 3.x, so nothing is traced
implicitly: every row becomes a ``batchjudge.judge`` call (inputs, rendered prompt, reply,
verdict, usage, latency, attempts), nested under the prediction that
:class:`weave.EvaluationLogger` logs for it, with per-row scores and the run's summary
metrics, so the run appears in Weave's evaluation and comparison views. Weave is imported
lazily; its client is synchronous, so this sink runs on a worker, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weave.trace.weave_client import WeaveClient

__all__ = [
    "JudgeCallFailed",
    "OperationFailed",
    "WeaveOpSink",
    "WeaveSink",
    "init_weave",
    "log_op",
]


class JudgeCallFailed(Exception):
    """Marks a row whose judge call failed, so Weave shows the call as an error."""


class OperationFailed(Exception):
    """Marks a traced operation (an export, a launch) that raised."""


def init_weave(project: str) -> WeaveClient:
    """``weave.init`` for batchjudge: no implicit patching (it does not fit mistralai 3.x and
    would trace calls twice) and no call links printed by library code."""
    import weave

    return weave.init(
        project,
        settings={"implicitly_patch_integrations": False, "print_call_link": False},
    )


def _judge(messages: list[dict[str, str]], model: str) -> Any:
    """Stands for one judge call in Weave; its inputs and output are logged explicitly.

    The row's premise and hypothesis are the inputs of the prediction this call nests in.
    """


_PREDICTION_FIELDS = ("verdict", "score", "reason")
"""What the evaluation's prediction shows; the full reply and usage are on the judge call.
(Weave's client spends time on every value it logs, so nothing is logged twice.)"""


def _model_name(model: str) -> str:
    name = re.sub(r"\W+", "_", model).strip("_") or "judge"
    return name if name[0].isalpha() else f"judge_{name}"


def _dataset_name(config: dict[str, Any], run_name: str) -> str:
    """Runs over the same inputs share a dataset name, so Weave lines them up to compare."""
    inputs = config.get("inputs") or []
    names = [PurePath(str(p)).name for p in inputs]
    return ",".join(n for n in names if n) or f"{run_name}-rows"


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


class WeaveSink:
    """Logs records to a Weave project through ``client_factory`` (default :func:`init_weave`).

    ``client_factory`` lets tests and the benchmark run the real Weave client against the
    in-process trace server of ``_recording`` instead of W&B.
    """

    def __init__(
        self,
        project: str,
        *,
        run_name: str,
        run_config: dict[str, Any],
        client_factory: Callable[[str], WeaveClient] = init_weave,
    ) -> None:
        self._project = project
        self._run_name = run_name
        self._run_config = run_config
        self._client_factory = client_factory
        self._client: WeaveClient | None = None
        self._op: Any = None
        self._evaluation: Any = None

    def open(self) -> None:
        import weave

        self._client = self._client_factory(self._project)
        self._op = weave.op(_judge, name="batchjudge.judge", enable_code_capture=False)
        config = self._run_config
        self._evaluation = weave.EvaluationLogger(
            name=self._run_name,
            model={
                "name": _model_name(str(config.get("model") or "judge")),
                **{
                    k: config[k] for k in ("model", "provider", "prompt") if k in config
                },
            },
            dataset=_dataset_name(config, self._run_name),
            eval_attributes={"batchjudge_config": config},
            trace_scores=False,
        )

    def write(self, records: list[dict[str, Any]]) -> int:
        failed = 0
        for record in records:
            try:
                self._log_row(record)
            except Exception:  # noqa: BLE001 - one bad row costs one trace, counted
                failed += 1
        return failed

    def finish(self, evaluation: dict[str, Any]) -> int:
        if self._evaluation is None or self._client is None:
            raise RuntimeError("weave sink is not open")
        summary = dict(evaluation.get("summary") or {})
        summary["trace_counters"] = evaluation.get("trace_counters", {})
        self._evaluation.log_summary(summary)
        self._client.flush()
        return 0

    def _log_row(self, record: dict[str, Any]) -> None:
        assert self._client is not None and self._evaluation is not None
        prediction = self._evaluation.log_prediction(
            inputs={
                "row_id": record["row_id"],
                "premise": record["inputs"]["premise"],
                "hypothesis": record["inputs"]["hypothesis"],
                "target": record["target"],
            },
            output={k: record["output"][k] for k in _PREDICTION_FIELDS},
        )
        call = self._client.create_call(
            self._op,
            inputs={
                "messages": record["inputs"]["messages"],
                "model": record["inputs"]["model"],
            },
            parent=prediction.predict_call,
            attributes={
                "row_id": record["row_id"],
                "status": record["status"],
                "attempts": record["attempts"],
                "latency_ms": record["latency_ms"],
            },
            use_stack=False,
            started_at=_parse_time(record["started_at"]),
        )
        failure = (
            JudgeCallFailed(record["error"] or "failed")
            if record["status"] == "failed"
            else None
        )
        self._client.finish_call(
            call,
            output=record["output"],
            exception=failure,
            op=self._op,
            ended_at=_parse_time(record["ended_at"]),
        )
        for name, value in record["scores"].items():
            prediction.log_score(name, value)
        prediction.finish()


def log_op(client: WeaveClient, record: dict[str, Any]) -> None:
    """Log an ``op`` record (see ``_records.build_op_record``) as one call and flush."""
    call = client.create_call(
        record["op"],
        inputs=record["inputs"],
        use_stack=False,
        started_at=_parse_time(record["started_at"]),
    )
    client.finish_call(
        call,
        output=record["output"],
        exception=OperationFailed(record["error"]) if record["error"] else None,
        ended_at=_parse_time(record["ended_at"]),
    )
    client.flush()


class WeaveOpSink:
    """Logs ``op`` records, each as a call of its own (no evaluation around them)."""

    def __init__(
        self, project: str, *, client_factory: Callable[[str], WeaveClient] = init_weave
    ) -> None:
        self._project = project
        self._client_factory = client_factory
        self._client: WeaveClient | None = None

    def open(self) -> None:
        self._client = self._client_factory(self._project)

    def write(self, records: list[dict[str, Any]]) -> int:
        if self._client is None:
            raise RuntimeError("weave sink is not open")
        for record in records:
            log_op(self._client, record)
        return 0

    def finish(self, evaluation: dict[str, Any]) -> int:
        return 0
