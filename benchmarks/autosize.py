"""The CLI told only ``--rps`` (no ``--concurrency``), against a strict server this project did
not write for itself: does the engine size what it keeps in flight?

The server (``serve``, below, ~80 lines of aiohttp, not the project's emulator) admits at most
``--limit`` requests in any one-second window counted by arrival; the rest get 429 with a
whole-second ``Retry-After`` at once; it announces no rate limit in headers; admitted requests
answer after a uniform ``latency ± jitter`` ms, 2% of them with a 500. It counts Retry-After
violations (arrivals more than 25 ms after a 429 and before its ``Retry-After`` ended) and the
429s after the first episode (the first second of 429s).

Scenarios (the issue's "Must show"):

- ``fast``: ``--rps 100`` on a 100 RPS server, 300 ± 150 ms, 4,000 rows;
- ``slow``: ``--rps 50`` on a 50 RPS server, 2,000 ± 1,000 ms, 6,000 rows;
- ``over``: ``--rps 1000`` (10x too high, nothing announced) on a 100 RPS server, 300 ± 150 ms,
  4,000 rows.

Efficiency = (ok rows / limit) / the CLI process's whole wall time (start-up included). Each
scenario runs the new code and, with ``--old-src`` (a checkout of the code before, e.g. a
``git worktree`` of main), the old one, interleaved in the same sitting.

    python benchmarks/autosize.py --repeats 2 --old-src /tmp/gate-old
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent
SRC = ROOT.parent
RESULTS = ROOT / "results" / "autosize.json"
REPLY = orjson.dumps({"consistency": 1, "reason": "supported"}).decode()


@dataclass(frozen=True)
class Scenario:
    name: str
    limit: int
    rps: int
    latency_ms: int
    jitter_ms: int
    rows: int
    old_rows: int | None = None
    """Rows for the old code when fewer (at 16 in flight it sends 8 a second to the slow server:
    6,000 rows would take 12 minutes for the same figure)."""


SCENARIOS = {
    "fast": Scenario("fast", 100, 100, 300, 150, 4000),
    "slow": Scenario("slow", 50, 50, 2000, 1000, 6000, old_rows=1000),
    "over": Scenario("over", 100, 1000, 300, 150, 4000),
}


# --- the strict server ------------------------------------------------------------------------


def serve(limit: int, latency_ms: int, jitter_ms: int, error_rate: float, seed: int) -> None:
    """Serve chat completions under a strict one-second window until killed; print the URL."""
    from collections import deque

    from aiohttp import web

    rng = random.Random(seed)
    admitted: deque[float] = deque()
    counts = {"arrivals": 0, "ok": 0, "errors": 0, "rate_limited": 0, "violations": 0, "after_first_episode": 0}
    pause = [0.0, 0.0]  # the latest 429: when, and until when its Retry-After lasts
    first_429 = [math.inf]
    times = {"first": math.inf, "last": 0.0}
    refused_at: list[float] = []

    async def chat(request: web.Request) -> web.Response:
        now = time.monotonic()
        body = await request.read()
        counts["arrivals"] += 1
        times["first"] = min(times["first"], now)
        if pause[0] + 0.025 < now < pause[1]:
            counts["violations"] += 1
        while admitted and admitted[0] <= now - 1.0:
            admitted.popleft()
        if len(admitted) >= limit:
            wait = max(1, math.ceil(admitted[0] + 1.0 - now))
            counts["rate_limited"] += 1
            refused_at.append(round(now - times["first"], 3))
            first_429[0] = min(first_429[0], now)
            if now > first_429[0] + 1.0:
                counts["after_first_episode"] += 1
            pause[0], pause[1] = now, max(pause[1], now + wait)
            return web.json_response({"message": "Rate limit exceeded"}, status=429, headers={"Retry-After": str(wait)})
        admitted.append(now)
        await asyncio.sleep(max(0.0, latency_ms + rng.uniform(-jitter_ms, jitter_ms)) / 1000.0)
        times["last"] = time.monotonic()
        if rng.random() < error_rate:
            counts["errors"] += 1
            return web.json_response({"message": "internal error"}, status=500)
        counts["ok"] += 1
        model = orjson.loads(body).get("model", "m")
        return web.json_response({
            "id": "x", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 500, "completion_tokens": 12, "total_tokens": 512},
        })

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({**counts, "active_s": max(0.0, times["last"] - times["first"]),
                                  "refused_at": refused_at[:50]})

    async def main() -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- one run -------------------------------------------------------------------------------


def run_once(scenario: Scenario, src: Path, label: str, data: Path, work: Path, repeat: int) -> dict[str, Any]:
    """One CLI run of ``src``'s code against a fresh server; its figures."""
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "serve", str(scenario.limit), str(scenario.latency_ms),
         str(scenario.jitter_ms), "0.02", str(repeat)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        out = work / f"{scenario.name}-{label}-{repeat}"
        rows = scenario.old_rows if label == "old" and scenario.old_rows else scenario.rows
        command = [sys.executable, "-m", "batchjudge", "run", str(data), "--out", str(out), "--provider", "mistral",
                   "--base-url", url, "--model", "mistral-small-latest", "--rps", str(scenario.rps),
                   "--timeout", "20", "--max-retries", "8", "--limit", str(rows), "--quiet"]
        env = {**os.environ, "MISTRAL_API_KEY": "sk-bench", "PYTHONPATH": str(src)}
        start = time.monotonic()
        done = subprocess.run(command, env=env, cwd=src, capture_output=True, text=True, check=False)
        wall = time.monotonic() - start
        with urllib.request.urlopen(f"{url}/stats") as reply:
            seen = orjson.loads(reply.read())
    finally:
        server.kill()
        server.wait()
    record = orjson.loads((out / "run.json").read_bytes()) if (out / "run.json").exists() else {}
    ok = int(record.get("counts", {}).get("ok", 0))
    return {
        "scenario": scenario.name, "code": label, "repeat": repeat, "exit": done.returncode, "rows": rows,
        "ok_rows": ok, "process_s": round(wall, 2), "efficiency_process": round(ok / scenario.limit / wall, 4),
        "efficiency_active": round(ok / scenario.limit / seen["active_s"], 4) if seen["active_s"] else None,
        "rate_limited": seen["rate_limited"], "after_first_episode": seen["after_first_episode"],
        "violations": seen["violations"], "limits": record.get("limits", ""),
        "refused_at_s": seen["refused_at"],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "stderr_tail": done.stderr[-300:] if done.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--old-src", type=Path, help="a checkout of the code before, run interleaved")
    args = parser.parse_args()
    from batchjudge.datasets.synth import write_synth

    runs: list[dict[str, Any]] = []
    codes = [("new", SRC)] + ([("old", args.old_src.resolve())] if args.old_src else [])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_synth(work / "data", rows=max(s.rows for s in SCENARIOS.values()), seed=0)[0]
        for name in args.scenario or list(SCENARIOS):
            for repeat in range(args.repeats):
                for label, src in codes:
                    run = run_once(SCENARIOS[name], src, label, data, work, repeat)
                    print(orjson.dumps(run).decode(), flush=True)
                    runs.append(run)
    summary = {}
    for run in runs:
        summary.setdefault(f"{run['scenario']}/{run['code']}", []).append(run)
    table = {key: {"runs": len(v), "efficiency_process_median": statistics.median(r["efficiency_process"] for r in v),
                   "violations": sum(r["violations"] for r in v),
                   "after_first_episode_max": max(r["after_first_episode"] for r in v)} for key, v in summary.items()}
    print(orjson.dumps(table, option=orjson.OPT_INDENT_2).decode())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps({"runs": runs, "summary": table}, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
    else:
        main()
