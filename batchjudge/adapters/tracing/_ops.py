"""Trace one-off operations (fine-tuning exports, job launches) as ops.

Unlike judged rows these are rare, so they are written synchronously when the operation
ends (to Weave through a short-lived child process, as for runs). A tracing failure is logged
and swallowed: the operation's own result or exception is never changed by tracing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ._jsonl import JsonlSink
from ._login import weave_login_problem
from ._process import ProcessSink
from ._records import build_op_record
from batchjudge.core.scrub import Scrubber, scrubbed_logger
from ._spec import TraceTarget, parse_trace_spec
from ._weave import log_op

__all__ = ["OPS_RUN_NAME", "OpTrace", "trace_op"]

logger = scrubbed_logger(__name__)

_TIMEOUT = 90.0
"""Longest wait for the Weave child to log one op (it opens within 60 s or gives up)."""

OPS_RUN_NAME = "ops"
"""``local:DIR`` writes op records to ``DIR/ops.jsonl``."""


@dataclass(slots=True)
class OpTrace:
    """Handed to the ``with`` body: set ``output`` to what the operation produced."""

    output: Any = None


@contextmanager
def trace_op(spec: str | None, name: str, inputs: dict[str, Any]) -> Iterator[OpTrace]:
    """Trace the ``with`` body as the op ``name`` with ``inputs`` to ``spec``.

    ``spec`` is a ``--trace`` target, or ``None`` to trace nothing. A bad ``spec`` raises
    :class:`~batchjudge.errors.ConfigError` before the body runs; an exception from the body
    is recorded as the op's error and re-raised. Example::

        with trace_op(cfg.trace, "batchjudge.finetune.export", {"rows": n}) as op:
            op.output = export(...)
    """
    target = parse_trace_spec(spec) if spec is not None else None
    handle = OpTrace()
    started = time.time()
    error: str | None = None
    try:
        yield handle
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if target is not None:
            scrub = Scrubber.from_environ()
            record = build_op_record(
                name=name,
                inputs=inputs,
                output=handle.output,
                error=error,
                started_at=started,
                ended_at=time.time(),
                scrub=scrub,
            )
            try:
                _emit(target, record, scrub)
            except Exception as exc:  # noqa: BLE001 - tracing never breaks the operation
                logger.warning(
                    "tracing: could not trace op %s: %s", name, scrub(str(exc))
                )


def _emit(target: TraceTarget, record: dict[str, Any], scrub: Scrubber) -> None:
    if target.kind == "local":
        sink = JsonlSink(target.directory, OPS_RUN_NAME)
        sink.open()
        sink.finish(record)
        return
    _emit_weave(target.location, record, scrub)


def _emit_weave(project: str, record: dict[str, Any], scrub: Scrubber) -> None:
    """Log ``record`` to an active Weave client for ``project`` if the caller has one (as in
    a notebook after ``weave.init``); otherwise through a child process, so that
    ``weave.init`` can neither prompt for a login nor hang the operation."""
    from weave.trace.context import weave_client_context

    entity, _, name = project.partition("/")
    client = weave_client_context.get_weave_client()
    if client is not None and (client.entity, client.project) == (entity, name):
        log_op(client, record)
        return
    no_login = weave_login_problem(project)
    if no_login is not None:
        raise RuntimeError(no_login)
    sink = ProcessSink(
        {"kind": "weave_ops", "location": project}, finish_timeout=_TIMEOUT, scrub=scrub
    )
    sink.open()
    sink.write([record])
    if sink.finish({}):
        raise RuntimeError("Weave did not accept the op (see the log for why)")
