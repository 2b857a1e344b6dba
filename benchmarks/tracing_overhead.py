"""Tracing overhead: rows/s through the real engine with tracing off, ``local:DIR`` and Weave.

Every run judges the same synthetic rows through the ``mistral`` provider against the
emulator (``batchjudge emulator``: strict RPS window, latency MEAN:JITTER), so the only
difference between modes is the tracer:

* ``off``   no tracer;
* ``local`` ``make_tracer("local:DIR")``, exactly what ``trace="local:DIR"`` builds;
* ``weave`` the Weave target as ``make_tracer`` builds it (Weave's client in a child
  process), except that the child's client talks to the in-process trace server of
  ``batchjudge.adapters.tracing._recording`` instead of W&B: Weave's full client-side work
  (ops, EvaluationLogger, serialisation, batching) without an account or network.

Wall time runs until the tracer has drained (``drain_s`` is that last part). Each run is a
fresh process; modes are interleaved within each repeat so load drift hits all alike; medians
are reported with the ratio to ``off``. JSON: ``results/tracing_overhead.json``.

    python benchmarks/tracing_overhead.py --rows 2000 --rps 100 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

CHILD = r"""
import json, os, resource, sys, time
import batchjudge
from batchjudge import RunConfig
mode, data, out, base_url, rps, concurrency, trace_dir = sys.argv[1:8]
config = RunConfig(inputs=[data], out=out, provider="mistral", model="mistral-small-latest",
                   base_url=base_url, api_key="bench-key", rps=float(rps),
                   concurrency=int(concurrency), check_labels=False)
tracer = None
if mode == "local":
    from batchjudge.adapters.tracing import make_tracer
    tracer = make_tracer(f"local:{trace_dir}", run_name="bench", run_config=config.public_dict())
elif mode == "weave":
    from batchjudge.adapters.tracing._process import ProcessSink
    from batchjudge.core.scrub import Scrubber
    from batchjudge.adapters.tracing._tracer import BackgroundTracer
    sink = ProcessSink({"kind": "weave", "location": "bench/tracing", "run_name": "bench",
                        "run_config": config.public_dict(),
                        "client_factory": "batchjudge.adapters.tracing._recording:counting_client"},
                       finish_timeout=600, scrub=Scrubber.from_environ())
    tracer = BackgroundTracer(sink, run_name="bench", run_config=config.public_dict(),
                              close_timeout=600)
class Timed:
    # The tracer, timing its end-of-run drain (aclose).
    drain_s = 0.0
    def __init__(self, inner): self.inner = inner
    def submit(self, record): self.inner.submit(record)
    async def aclose(self, summary=None):
        t = time.perf_counter()
        try:
            return await self.inner.aclose(summary)
        finally:
            Timed.drain_s = time.perf_counter() - t
t = time.perf_counter(); c0 = time.process_time()
result = batchjudge.run(config, tracer=Timed(tracer) if tracer else None)
wall = time.perf_counter() - t
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rows": result.stats["finished"], "counts": result.counts, "wall_s": wall,
                  "cpu_s": time.process_time() - c0,
                  "child_cpu_s": children.ru_utime + children.ru_stime, "trace": result.trace,
                  "drain_s": Timed.drain_s}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_emulator(
    port: int, rps: float, latency: str, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchjudge",
                "emulator",
                "--port",
                str(port),
                "--rps",
                str(rps),
                "--latency-ms",
                latency,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/v1/models", timeout=1
            ).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the emulator did not start: {log.read_text()[-2000:]}")


def run_once(
    mode: str, data: Path, tmp: Path, base_url: str, args: argparse.Namespace, i: int
) -> dict:
    out, traces = tmp / f"{mode}-{i}", tmp / f"traces-{mode}-{i}"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            mode,
            str(data),
            str(out),
            base_url,
            str(args.rps),
            str(args.concurrency),
            str(traces),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_ERROR_REPORTING": "false"},
    )
    sample: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    sample["rows_per_s"] = sample["rows"] / sample["wall_s"]
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rps", type=float, default=100)
    parser.add_argument("--latency-ms", default="300:150")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="off,local,weave")
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "tracing_overhead.json"
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    from batchjudge.datasets.synth import write_synth

    samples: dict[str, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "data"
        write_synth(data, rows=args.rows, shards=2, seed=11)
        port = free_port()
        emulator = start_emulator(port, args.rps, args.latency_ms, tmp / "emulator.log")
        try:
            for i in range(args.repeats):
                for mode in modes:
                    samples[mode].append(
                        run_once(mode, data, tmp, f"http://127.0.0.1:{port}", args, i)
                    )
        finally:
            emulator.kill()
            emulator.wait()
    off = statistics.median(s["rows_per_s"] for s in samples[modes[0]])
    result = {
        "benchmark": "tracing_overhead",
        "rows": args.rows,
        "rps_limit": args.rps,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "modes": {
            mode: {
                "rows_per_s_median": round(
                    statistics.median(s["rows_per_s"] for s in runs), 2
                ),
                "rows_per_s_all": [round(s["rows_per_s"], 2) for s in runs],
                "vs_" + modes[0]: round(
                    statistics.median(s["rows_per_s"] for s in runs) / off, 4
                ),
                "engine_cpu_ms_per_row": round(
                    statistics.median(1000 * s["cpu_s"] / s["rows"] for s in runs), 3
                ),
                "trace_process_cpu_ms_per_row": round(
                    statistics.median(
                        1000 * s["child_cpu_s"] / s["rows"] for s in runs
                    ),
                    3,
                ),
                "drain_s_median": round(
                    statistics.median(s["drain_s"] for s in runs), 3
                ),
                "trace_counters": runs[-1]["trace"],
                "counts": runs[-1]["counts"],
            }
            for mode, runs in samples.items()
        },
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
    }
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
