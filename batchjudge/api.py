"""The public entry points: :func:`run_async` and :func:`run`; :func:`dry_run` to count before
spending, :func:`run_status` to look at a run directory from outside.

A run is the engine's pipeline (:mod:`batchjudge.engine.pipeline`) plus what sits above it:
the tracer the config names, which the engine receives but never imports, and the report's
metrics, which the tracer logs as the run's evaluation summary (so Weave's evaluation view
shows accuracy, F1 and ROC-AUC as in the cookbook). Everything that can be wrong with the
inputs or options raises before a tracer starts or a request is sent.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import anyio

from batchjudge.core.tracer import Tracer
from batchjudge.core.types import Provider
from batchjudge.engine.budget import TokenPrices
from batchjudge.engine.config import RunConfig
from batchjudge.engine.dryrun import DryRun, dry_run_plan
from batchjudge.engine.limits import Clock, Sleep
from batchjudge.engine.pipeline import Engine, ProgressCallback, RunResult, execute, plan_run
from batchjudge.engine.status import RunStatus, read_status
from batchjudge.errors import ConfigError

__all__ = ["dry_run", "event_loop_options", "run", "run_async", "run_status"]


async def run_async(
    config: RunConfig,
    *,
    provider: Provider | None = None,
    progress: ProgressCallback | None = None,
    tracer: Tracer | None = None,
    progress_interval: float = 0.25,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
    stop: anyio.Event | None = None,
    stop_grace: float = 10.0,
) -> RunResult:
    """Judge every row of ``config.inputs`` into ``config.out``; resume when it exists.

    Raises :class:`~batchjudge.errors.InputError` / :class:`~batchjudge.errors.ConfigError` /
    :class:`~batchjudge.errors.CheckpointError` before anything is sent or written when the
    inputs or options cannot work, and :class:`~batchjudge.errors.StorageError` when the file
    system refuses a write (what was written stays valid; the same call resumes). ``provider``
    replaces the one named in the config (tests, custom backends); ``progress`` is called
    with live counters while the run works (an error it raises stops the run, every answered
    row written, and is raised as it is); ``tracer`` replaces the one ``config.trace`` names
    (it is closed at the end either way); ``clock`` and ``sleep`` drive every limit, wait and
    retry (a fake clock in tests).

    Stopping: set ``stop`` to stop gracefully: what has arrived is written, nothing more is
    sent, the replies on the wire get up to ``stop_grace`` seconds, and the call returns a
    result with ``complete`` False. Cancelling the call stops at once: every row that reached
    the writer is still written (and the provider and tracer closed) before the cancellation
    goes on; replies still on the wire are lost, and sent again by the next run.
    """
    plan = plan_run(config, provider=provider)
    engine = _engine(config, provider, traced=tracer is not None or bool(config.trace))
    prices = _token_prices(plan.model) if config.max_cost is not None else None
    if tracer is None and config.trace:
        from batchjudge.adapters.tracing import make_tracer

        tracer = make_tracer(config.trace, sample_rate=config.trace_sample,
                             run_name=os.path.basename(os.path.abspath(config.out)),
                             run_config=plan.public_config())
    result: RunResult | None = None
    try:
        result = await execute(plan, provider=provider, tracer=tracer, progress=progress,
                               progress_interval=progress_interval, clock=clock, sleep=sleep, prices=prices,
                               stop=stop, stop_grace=stop_grace, engine=engine)
    finally:
        if tracer is not None:
            with anyio.CancelScope(shield=result is None):  # a cancelled run still closes it
                summary = None if result is None else await _evaluation_summary(result, config)
                trace = await tracer.aclose(summary)
            if result is not None:
                result.trace = trace
                result.stats["trace_dropped"] = trace.get("dropped", 0)
    assert result is not None  # execute returned, or its error went up
    return result


def _engine(config: RunConfig, provider: Provider | None, *, traced: bool) -> Engine | None:
    """The distributed engine ``config.engine`` names (Ray is imported only then), or None.
    ``traced`` brings each row's inputs back to this process for the tracer."""
    if config.engine == "process":
        return None
    if provider is not None:
        raise ConfigError("--engine ray builds its providers in its workers: name one with --provider, "
                          "not a provider object")
    from batchjudge.ray import RayEngine

    return RayEngine(config, keep_inputs=traced)


def _token_prices(model: str) -> TokenPrices:
    """The per-token prices a cost allowance is counted in; ConfigError when unknown."""
    from batchjudge.report.prices import load_prices

    price = load_prices(None).price(model)
    if price is None:
        raise ConfigError(
            f"--max-cost: no price is known for model {model!r}; "
            "use --max-total-tokens instead"
        )
    return TokenPrices(prompt=price.input / 1_000_000, completion=price.output / 1_000_000)


async def _evaluation_summary(result: RunResult, config: RunConfig) -> dict[str, Any]:
    """What the tracer logs for the run: counts, counters and the report's metrics."""
    from batchjudge.report.loading import load_run
    from batchjudge.report.prices import load_prices
    from batchjudge.report.summary import summarize

    metrics = await anyio.to_thread.run_sync(lambda: summarize(load_run(os.fspath(config.out)), load_prices(None)))
    return {"counts": dict(result.counts), "stats": dict(result.stats), "metrics": metrics}


def event_loop_options() -> dict[str, Any]:
    """anyio backend options for a loop this process owns: uvloop where installed.

    uvloop roughly halves the event loop's own CPU per request, which matters at 400 RPS on
    one core; the engine works the same on the standard loop.
    """
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def run(config: RunConfig, **options: Any) -> RunResult:
    """Run ``config`` to the end in a fresh event loop (see :func:`run_async` for options).

    From inside an async program, ``await batchjudge.run_async(config)`` instead.
    """
    return anyio.run(functools.partial(run_async, config, **options), backend_options=event_loop_options())


def dry_run(config: RunConfig, *, provider: Provider | None = None) -> DryRun:
    """What :func:`run` would do with ``config`` (and ``provider``, when the run is given one):
    rows, calls and exact prompt tokens; nothing is sent and nothing written. Raises as
    :func:`run` would for inputs or options that cannot work, and for a resume it would refuse.
    Price it with ``DryRun.cost``, e.g. ``dry.cost(load_prices(None).price(dry.model).cost)``.
    """
    return dry_run_plan(plan_run(config, provider=provider))


def run_status(run_dir: str | os.PathLike[str]) -> RunStatus:
    """How the run in ``run_dir`` stands, read without disturbing it (a run may be writing)."""
    return read_status(run_dir)
