"""Trace emission for batchjudge runs: Weave, or JSON lines for offline use.

The engine imports this package lazily, only when ``--trace`` is given, and calls
:func:`make_tracer`; the returned tracer keeps all work off the engine's event loop and can
never fail a run (see ``_tracer``). Weave's client is CPU-hungry, so a Weave target runs in
a child process (see ``_child``); ``local:DIR`` writes JSON lines from a thread.
:func:`trace_op` traces one-off operations such as fine-tuning exports and launches.
"""

from __future__ import annotations

from typing import Any

from batchjudge.core.tracer import Tracer
from batchjudge.errors import ConfigError

from ._jsonl import JsonlSink
from ._login import weave_login_problem
from ._ops import OpTrace, trace_op
from ._process import ProcessSink
from ._sampling import check_sample_rate
from batchjudge.core.scrub import default_scrubber, scrubbed_logger
from ._sink import Sink, UnavailableSink
from ._spec import parse_trace_spec
from ._tracer import BackgroundTracer

__all__ = ["OpTrace", "make_tracer", "trace_op"]

logger = scrubbed_logger(__name__)

_CLOSE_TIMEOUT = 300.0
"""Longest wait, at the end of a run, for traces to drain (Weave over a slow network)."""


def make_tracer(
    spec: str,
    *,
    sample_rate: float = 1.0,
    run_name: str,
    run_config: dict[str, Any],
    queue_size: int = 10_000,
) -> Tracer:
    """Start a tracer for ``spec`` (``weave:ENTITY/PROJECT`` or ``local:DIR``).

    ``local:DIR`` appends JSON lines to ``DIR/<run_name>.jsonl``: a ``call`` record per row
    and an ``evaluation`` record with ``summary`` at the end. ``weave:ENTITY/PROJECT`` logs
    the same as a Weave evaluation (a ``batchjudge.judge`` call per row).

    ``sample_rate`` traces that fraction of rows, chosen by a hash of the row id so a resumed
    run traces the same rows; ``queue_size`` bounds the rows waiting to be traced (more are
    dropped and counted). Raises :class:`~batchjudge.errors.ConfigError` for a bad ``spec``
    or rate. Call it from the engine's running event loop; it returns at once (connecting
    to Weave happens in the background).
    """
    target = parse_trace_spec(spec)
    rate = check_sample_rate(sample_rate)
    if queue_size < 1:
        raise ConfigError(f"trace queue size {queue_size}: expected at least 1")
    scrub = default_scrubber()
    config = scrub(run_config)
    sink: Sink
    no_login = weave_login_problem(target.location) if target.kind == "weave" else None
    if target.kind == "local":
        sink = JsonlSink(target.directory, run_name)
    elif no_login is not None:
        logger.warning("tracing: %s", no_login)
        sink = UnavailableSink()
    else:
        sink = ProcessSink(
            {
                "kind": "weave",
                "location": target.location,
                "run_name": run_name,
                "run_config": config,
            },
            finish_timeout=_CLOSE_TIMEOUT - 10.0,
            scrub=scrub,
        )
    return BackgroundTracer(
        sink,
        run_name=run_name,
        run_config=config,
        sample_rate=rate,
        queue_size=queue_size,
        close_timeout=_CLOSE_TIMEOUT,
        scrub=scrub,
    )
