"""Emulator CPU per request: what ``batchjudge emulator`` costs its core, by limit scenario.

The emulator runs beside the client on a 2-core box in the throughput benchmarks, so its CPU
per request must stay low. ``batchjudge emulator`` runs in a child process; an aiohttp client
sends chat completions (64 distinct judge prompts, cycled, so tokenizer and judge caches are
warm after the warm-up) and the child's CPU time (user + system) is read before and after.
Scenarios: no limits; every limit set but never reached (all windows checked and filled); and
a 429 storm (``--rps 5``: nearly every request refused). Median of the repeats.

    python benchmarks/emulator_cpu.py [--requests 4000] [--repeats 3] [--python PYTHON]

``--python PYTHON`` runs the emulator with another interpreter (another checkout's virtualenv)
for a before/after comparison; scenarios its CLI cannot express are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import emulator_url  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SCENARIOS: dict[str, list[str]] = {
    "open": [],
    "all-limits": ["--rps", "100000", "--rpm", "10000000", "--tpm", "1000000000",
                   "--tokens-per-month", "1000000000000"],
    "rps+tpm": ["--rps", "100000", "--tpm", "1000000000"],
    "429-storm": ["--rps", "5"],
}
WARM_UP = 300


def _bodies() -> list[bytes]:
    from batchjudge.adapters.prompts import PRESETS, PromptAdapter

    adapter = PromptAdapter(PRESETS["zero-shot"], "mistral-small-latest")
    bodies = []
    for i in range(64):
        rendered = adapter.render(
            f"Report {i}: the council approved {i + 3} new homes in Leeds on Monday.",
            f"The council approved {i + (3 if i % 2 else 700)} new homes.",
        )
        body = {"model": "mistral-small-latest", "messages": rendered.messages,
                "response_format": {"type": "json_object"}, "max_tokens": 256}
        bodies.append(json.dumps(body).encode())
    return bodies


async def _drive(url: str, bodies: list[bytes], n: int, concurrency: int) -> dict[int, int]:
    import aiohttp

    statuses: dict[int, int] = {}
    queue = iter(range(n))
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in queue:
                async with session.post(url + "/v1/chat/completions", data=bodies[i % 64],
                                        headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def _child_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run_once(python: str, flags: list[str], requests: int, concurrency: int) -> dict[str, Any]:
    command = [python, "-m", "batchjudge", "emulator", "--port", "0", *flags]
    env = {**os.environ, "WEAVE_DISABLED": "true"}
    # cwd "/": ``-m`` puts the working directory first on sys.path, which would shadow the
    # checkout the interpreter's own install points at
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=env, cwd="/")
    try:
        url = emulator_url(child)
        bodies = _bodies()
        deadline = time.monotonic() + 60
        while True:
            try:
                asyncio.run(_drive(url, bodies, WARM_UP, 8))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        before = _child_cpu(child.pid)
        statuses = asyncio.run(_drive(url, bodies, requests, concurrency))
        cpu = _child_cpu(child.pid) - before
    finally:
        child.terminate()
        child.wait(timeout=10)
    return {"cpu_ms_per_request": 1000 * cpu / requests, "statuses": statuses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    rows = []
    for name, flags in SCENARIOS.items():
        samples = []
        for _ in range(args.repeats):
            try:
                samples.append(run_once(args.python, flags, args.requests, args.concurrency))
            except RuntimeError as exc:
                print(f"{name}: skipped ({exc})", file=sys.stderr)
                break
        if not samples:
            continue
        cpu = statistics.median(s["cpu_ms_per_request"] for s in samples)
        rows.append({"scenario": name, "flags": " ".join(flags),
                     "cpu_ms_per_request": round(cpu, 3),
                     "samples": [round(s["cpu_ms_per_request"], 3) for s in samples],
                     "statuses": samples[-1]["statuses"]})
        print(f"{name:12s} {cpu:6.3f} ms CPU/request  {samples[-1]['statuses']}", flush=True)
    result = {"benchmark": "emulator_cpu", "requests": args.requests, "repeats": args.repeats,
              "concurrency": args.concurrency,
              "load_average": os.getloadavg()[0], "scenarios": rows}
    if args.python == sys.executable:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "emulator_cpu.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
