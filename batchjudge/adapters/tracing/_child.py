"""The out-of-process sink: ``python -m batchjudge.adapters.tracing._child``.

Reads frames on stdin (``open`` with a sink config, ``write`` batches, ``finish``) and answers
``finish`` with how many records failed. Weave's client spends milliseconds of CPU per row;
in its own process that work uses another core instead of contending with the engine's
event loop for the GIL. Anything the sink prints goes to stderr, never into the protocol.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ._jsonl import JsonlSink
from ._sink import Sink
from ._weave import WeaveOpSink, WeaveSink, init_weave
from ._wire import read_frame, write_frame

__all__ = ["main", "sink_from_config"]


def sink_from_config(config: dict[str, Any]) -> Sink:
    """Build the sink a config names: ``{"kind": "weave"|"weave_ops"|"local", "location",
    "run_name", "run_config"}``; a Weave config may name a ``client_factory``
    ("module:function") to use in place of ``weave.init`` (the offline trace server of tests
    and the benchmark)."""
    if config["kind"] == "weave":
        factory = config.get("client_factory")
        return WeaveSink(
            config["location"],
            run_name=config["run_name"],
            run_config=config["run_config"],
            client_factory=_import(factory) if factory else init_weave,
        )
    if config["kind"] == "weave_ops":
        factory = config.get("client_factory")
        return WeaveOpSink(
            config["location"],
            client_factory=_import(factory) if factory else init_weave,
        )
    if config["kind"] == "local":
        return JsonlSink(Path(config["location"]), config["run_name"])
    raise ValueError(f"unknown sink kind {config['kind']!r}")


def _import(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_OPEN_TIMEOUT = 60.0
"""Longest wait for a sink to open (``weave.init`` retrying an unreachable server)."""


def _open(sink: Sink, timeout: float) -> str | None:
    """Open ``sink`` within ``timeout`` seconds; return why it failed, or None.

    A thread, because nothing can interrupt ``weave.init``: when it hangs, the child stops
    waiting, fails every record at once, and exits without it.
    """
    outcome: list[str | None] = []

    def target() -> None:
        try:
            sink.open()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which counts it
            outcome.append(repr(exc))

    opener = threading.Thread(target=target, name="trace-sink-open", daemon=True)
    opener.start()
    opener.join(timeout)
    return (
        outcome[0] if outcome else f"the trace sink did not open within {timeout:g} s"
    )


def _serve(sink_config: dict[str, Any], requests: Any, replies: Any) -> None:
    sink: Sink | None = sink_from_config(sink_config)
    failed = 0
    assert sink is not None
    first_error = _open(sink, float(sink_config.get("open_timeout", _OPEN_TIMEOUT)))
    if first_error is not None:
        sink = None
    while True:
        message = read_frame(requests)
        if message is None or message["op"] == "finish":
            evaluation = (
                message["evaluation"] if message else {"summary": {"aborted": True}}
            )
            if sink is None:
                failed += 1  # the evaluation record is lost too
            else:
                try:
                    failed += sink.finish(evaluation)
                except Exception as exc:  # noqa: BLE001
                    first_error = first_error or repr(exc)
                    failed += 1
            write_frame(replies, {"failed": failed, "error": first_error})
            return
        records = message["records"]
        if sink is None:
            failed += len(records)
            continue
        try:
            failed += sink.write(records)
        except Exception as exc:  # noqa: BLE001
            first_error = first_error or repr(exc)
            failed += len(records)


_NICENESS = 10
"""Tracing yields the CPU to the run (and to anything else on the machine) when short of it."""


def main() -> None:
    """Serve one sink until ``finish`` or the end of its input, at a lower CPU priority."""
    if hasattr(os, "nice"):
        os.nice(_NICENESS)
    if importlib.util.find_spec("wandb") is None:
        # Weave probes ``import wandb`` on every call; without wandb installed each probe
        # searches the whole path again. A None entry makes the probe fail at once.
        sys.modules["wandb"] = None  # type: ignore[assignment]
    # The protocol moves to private descriptors. Stdin becomes /dev/null, so a login prompt
    # (``weave.init`` without credentials) sees end-of-file instead of eating our frames, and
    # stdout goes to stderr, so nothing printed can corrupt the replies.
    requests = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, sys.stdin.fileno())
    os.close(devnull)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    hello = read_frame(requests)
    if hello is None:
        return
    _serve(hello["config"], requests, replies)
    # The sink has flushed and the parent has its answer. Skip interpreter teardown: Weave's
    # exit hooks would wait on its idle threads for most of a second, delaying the run's end.
    os._exit(0)


if __name__ == "__main__":
    main()
