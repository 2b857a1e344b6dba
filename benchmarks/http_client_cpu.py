"""CPU a chat request costs in the HTTP client alone: ``aiohttp`` against the package's HTTP/1.1
client (``adapters/mistral/_http1.py``), no engine around either.

Each client sends ``--requests`` chat completions to ``batchjudge emulator`` (no limit,
300±150 ms latency) in its own process, paced at a fixed rate (a task launched every 1/rate
seconds, as a paced run sends), on uvloop, and reports its own CPU (user + system) around the
paced requests, after 100 unpaced warm-up requests. The clients run interleaved, ``--repeats``
times at each rate. Results: ``results/http_client_cpu.json`` and the table in ``README.md``.

    python benchmarks/http_client_cpu.py                    # 100 and 400 a second, 3 repeats (~3 min)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

from throughput import serving

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "http_client_cpu.json"
CLIENTS = ("aiohttp", "http1")
BODY = orjson.dumps({
    "model": "mistral-small-latest", "response_format": {"type": "json_object"},
    "messages": [{"role": "user", "content": "Is the summary consistent with the document? " * 40}],
})  # fmt: skip
HEADERS = {"Authorization": "Bearer bench", "Accept": "application/json", "User-Agent": "batchjudge"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _paced(send: object, rate: float, requests: int) -> float:
    """CPU seconds of ``requests`` sends launched every 1/rate s, once all are answered."""
    assert callable(send)
    for _ in range(100):
        await send()
    tasks: set[asyncio.Task[None]] = set()
    cpu, start = _cpu(), time.monotonic()
    for i in range(requests):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.wait(set(tasks))
    return _cpu() - cpu


async def _client(kind: str, url: str, rate: float, requests: int) -> float:
    if kind == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(headers=HEADERS, timeout=aiohttp.ClientTimeout(total=30)) as session:
            async def send() -> None:
                async with session.post(url + "/v1/chat/completions", data=BODY,
                                        headers={"Content-Type": "application/json"}) as response:
                    orjson.loads(await response.read())

            return await _paced(send, rate, requests)
    from batchjudge.adapters.mistral._http1 import Http1Pool

    pool = Http1Pool(url, HEADERS, timeout=30, connect_timeout=10)

    async def send_http1() -> None:
        reply = await pool.request("POST", "/v1/chat/completions", BODY, content_type="application/json",
                                   what="chat completion", cap=1 << 20)
        orjson.loads(reply.body)

    try:
        return await _paced(send_http1, rate, requests)
    finally:
        pool.close()


def _child(kind: str, url: str, rate: float, requests: int) -> None:
    import uvloop

    print(orjson.dumps({"cpu_s": uvloop.run(_client(kind, url, rate, requests))}).decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,400")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    with serving("--latency-ms", "300:150", "--seed", "0") as url:
        for rate in [float(r) for r in args.rates.split(",")]:
            for repeat in range(args.repeats):
                for kind in CLIENTS:
                    done = subprocess.run(
                        [sys.executable, __file__, "child", kind, url, str(rate), str(args.requests)],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    cpu = float(orjson.loads(done.stdout.strip().splitlines()[-1])["cpu_s"])
                    run = {"client": kind, "rate": rate, "repeat": repeat, "requests": args.requests,
                           "ms_per_request": round(cpu * 1000 / args.requests, 3)}
                    runs.append(run)
                    print(orjson.dumps(run).decode(), flush=True)
    lines = ["| client | rate | runs | CPU ms a request, median (min–max) |", "|---|---|---|---|"]
    for rate in sorted({float(str(r["rate"])) for r in runs}):
        for kind in CLIENTS:
            ms = [float(str(r["ms_per_request"])) for r in runs if r["client"] == kind and r["rate"] == rate]
            lines.append(f"| {kind} | {rate:g}/s | {len(ms)} | {statistics.median(ms):.2f} ({min(ms):.2f}–{max(ms):.2f}) |")
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps({
        "benchmark": "http_client_cpu", "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_at_end": os.getloadavg()},
        "latency_ms": "300:150", "runs": runs,
    }, option=orjson.OPT_INDENT_2))  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        _child(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
