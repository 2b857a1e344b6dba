"""Throughput against a strict rate limit: the engine (both transports) vs a plain SDK loop.

The emulator runs in its own process (``batchjudge emulator``) with a strict per-second
request window, 300±150 ms latency and, optionally, 10% injected faults. Each client runs in
its own process too, so its CPU time (``getrusage(RUSAGE_CHILDREN)``) is its own:

- ``engine/http`` — ``batchjudge run --provider mistral --transport http`` (the default);
- ``engine/sdk``  — the same with ``--transport sdk`` (the official mistralai client);
- ``baseline/sdk`` — what most users write: ``asyncio.gather`` + a semaphore + tenacity around
  ``client.chat.complete_async`` (this file's ``baseline-client`` sub-command).

Reported per run: efficiency = (ok rows / limit) / active wall time, where the active time runs
from the server's first chat request to its last answer; the same over the whole process wall
time (start-up included); client CPU seconds per 1,000 requests the server saw, both
everything-included and marginal (a one-row run's CPU — imports, tokenizer load — subtracted);
retries; 429s; Retry-After violations and early arrivals from the emulator's ``/stats``.

Before measuring, each emulator answers the whole workload once as a batch job, which fills
its tokenizer and judge caches: the server has one core and must never be what is measured.

Usage::

    python benchmarks/throughput.py                # full matrix (~6 min on 2 cores)
    python benchmarks/throughput.py --quick        # 100 RPS, no faults, engine/http only
                                                   # (results/throughput-quick.json)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl

MODEL = "mistral-small-latest"
LATENCY = "300:150"
FAULTS_10 = "500:0.05,503:0.02,drop:0.01,malformed:0.01,nonjson:0.01"
"""10% of admitted requests fail (5xx, dropped connections, garbled replies); no ``slow``:
a reply held past the timeout would measure the timeout, not the client."""
TIMEOUT_S = 10
MAX_RETRIES = 8
SDK_ROWS_CAP = 1000
"""The SDK clients cannot reach 400 RPS (12-26 ms of CPU per request); cap their rows."""
ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "throughput.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- throughput:begin -->", "<!-- throughput:end -->"


@dataclass
class Outcome:
    """One client run against one emulator configuration."""

    client: str
    limit_rps: int
    faults: str
    rows: int
    ok_rows: int
    failed_rows: int
    requests: int
    retries: int
    rate_limited: int
    retry_after_violations: int
    early_arrivals: int
    active_s: float
    process_s: float
    efficiency: float
    efficiency_process: float
    cpu_s: float
    cpu_s_per_1000: float
    marginal_cpu_s_per_1000: float
    concurrency: int


# --- the emulator process ------------------------------------------------------------------


@contextmanager
def emulator(rps: int, faults: str, seed: int = 0) -> Iterator[str]:
    """``batchjudge emulator`` in a child process; yields its base URL."""
    command = [
        sys.executable,
        "-m",
        "batchjudge",
        "emulator",
        "--port",
        "0",
        "--rps",
        str(rps),
        "--latency-ms",
        LATENCY,
        "--seed",
        str(seed),
    ]
    if faults:
        command += ["--faults", faults]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        banner = child.stdout.readline()
        match = re.search(r"(http://\S+)", banner)
        if match is None:
            raise RuntimeError(f"the emulator did not start: {banner!r}")
        url = match.group(1)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        child.terminate()
        child.wait(timeout=30)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=10) as response:
        payload: dict[str, Any] = orjson.loads(response.read())
    return payload


def _messages(premises: list[str], hypotheses: list[str]) -> list[list[dict[str, str]]]:
    """The exact messages ``batchjudge run`` sends with its default prompt."""
    from batchjudge.adapters.prompts import DEFAULT_PRESET, PRESETS, PromptAdapter

    adapter = PromptAdapter(PRESETS[DEFAULT_PRESET], MODEL, count_tokens=False)
    return [adapter.render(p, h).messages for p, h in zip(premises, hypotheses)]


def warm(url: str, data: Path, rows: int) -> None:
    """Answer the workload once as a batch job, filling the emulator's caches."""
    from mistralai.client import Mistral

    table = pl.read_parquet(data).head(rows)
    lines = [
        orjson.dumps(
            {"custom_id": i, "body": {"messages": m, "response_format": {"type": "json_object"}}}
        )
        for i, m in zip(
            table["id"], _messages(table["premise"].to_list(), table["hypothesis"].to_list())
        )
    ]
    client = Mistral(api_key="bench-warm", server_url=url)
    uploaded = client.files.upload(
        file={"file_name": "warm.jsonl", "content": b"\n".join(lines)}, purpose="batch"
    )
    job = client.batch.jobs.create(
        input_files=[uploaded.id], endpoint="/v1/chat/completions", model=MODEL
    )
    while job.status in ("QUEUED", "RUNNING"):
        time.sleep(0.5)
        job = client.batch.jobs.get(job_id=job.id)
    if job.status != "SUCCESS" or job.succeeded_requests != rows:
        raise RuntimeError(f"warm-up batch ended {job.status} ({job.succeeded_requests}/{rows})")


# --- the clients -----------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _client_command(
    client: str, url: str, data: Path, out: Path, rows: int, rps: int, concurrency: int
) -> list[str]:
    if client.startswith("engine/"):
        return [
            sys.executable,
            "-m",
            "batchjudge",
            "run",
            str(data),
            "--out",
            str(out),
            "--provider",
            "mistral",
            "--base-url",
            url,
            "--model",
            MODEL,
            "--transport",
            client.split("/")[1],
            "--rps",
            str(rps),
            "--concurrency",
            str(concurrency),
            "--timeout",
            str(TIMEOUT_S),
            "--max-retries",
            str(MAX_RETRIES),
            "--limit",
            str(rows),
            "--quiet",
        ]
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "baseline-client",
        url,
        str(data),
        str(rows),
        str(concurrency),
        str(out),
    ]


def _run_client(
    command: list[str], key: str
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run one client process; (cpu seconds, wall seconds, the finished process)."""
    env = {
        **os.environ,
        "MISTRAL_API_KEY": key,
        "WEAVE_DISABLED": "true",
        "WANDB_ERROR_REPORTING": "false",
    }
    cpu, wall = _children_cpu(), time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return _children_cpu() - cpu, time.monotonic() - wall, done


def _rows_outcome(client: str, out: Path) -> tuple[int, int, int]:
    """(ok rows, failed rows, retries) as the client recorded them."""
    if client.startswith("engine/"):
        results = pl.read_parquet(sorted((out / "results").glob("*.parquet")))
        ok = int((results["status"] == "ok").sum())
        return ok, results.height - ok, int(results["attempts"].sum()) - results.height
    summary = orjson.loads((out / "baseline.json").read_bytes())
    return summary["ok"], summary["failed"], summary["retries"]


def measure(
    client: str,
    url: str,
    data: Path,
    work: Path,
    *,
    rows: int,
    rps: int,
    faults: str,
    startup_cpu: float,
) -> Outcome:
    """One client run under its own API key; the server's counters for that key."""
    from batchjudge.emulator.state import key_label

    concurrency = math.ceil(rps * 0.6)
    out = work / f"{client.replace('/', '-')}-{rps}-{'faults' if faults else 'clean'}"
    key = f"bench-{out.name}"
    cpu, wall, done = _run_client(
        _client_command(client, url, data, out, rows, rps, concurrency), key=key
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{client} failed ({done.returncode}): {done.stderr[-2000:]}")
    seen = stats(url)["keys"][key_label(key)]
    ok, failed, retries = _rows_outcome(client, out)
    requests = seen["chat_completions"]
    active = seen["last_chat_s"] - seen["first_chat_s"]
    return Outcome(
        client=client,
        limit_rps=rps,
        faults=faults or "none",
        rows=rows,
        ok_rows=ok,
        failed_rows=failed,
        requests=requests,
        retries=retries,
        rate_limited=seen["rate_limited"],
        retry_after_violations=seen["retry_after_violations"],
        early_arrivals=seen["early_arrivals"],
        active_s=round(active, 3),
        process_s=round(wall, 3),
        efficiency=round(ok / rps / active, 4),
        efficiency_process=round(ok / rps / wall, 4),
        cpu_s=round(cpu, 3),
        cpu_s_per_1000=round(cpu * 1000 / requests, 3),
        marginal_cpu_s_per_1000=round(max(0.0, cpu - startup_cpu) * 1000 / requests, 3),
        concurrency=concurrency,
    )


def startup_cpu(client: str, url: str, data: Path, work: Path) -> float:
    """CPU of a one-row run: imports, tokenizer load, setup — what a longer run does once."""
    out = work / f"startup-{client.replace('/', '-')}"
    cpu, _, done = _run_client(
        _client_command(client, url, data, out, 1, 100, 1), key=f"bench-{out.name}"
    )
    if done.returncode != 0:
        raise RuntimeError(f"{client} one-row run failed: {done.stderr[-2000:]}")
    return cpu


# --- the baseline client (run as a sub-process) -------------------------------------------------


def baseline_client(url: str, data: str, rows: int, concurrency: int, out: str) -> None:
    """asyncio.gather + semaphore + tenacity around the SDK: the loop most users write."""
    from mistralai.client import Mistral
    from mistralai.client.errors import SDKError
    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_attempt,
        wait_random_exponential,
    )

    table = pl.read_parquet(data).head(rows)
    messages = _messages(table["premise"].to_list(), table["hypothesis"].to_list())
    client = Mistral(
        api_key=os.environ["MISTRAL_API_KEY"], server_url=url, timeout_ms=TIMEOUT_S * 1000
    )
    semaphore = asyncio.Semaphore(concurrency)
    retries = 0

    def retryable(exc: BaseException) -> bool:
        return (
            not isinstance(exc, SDKError)
            or exc.status_code in (200, 408, 429)
            or exc.status_code >= 500
        )

    async def one(chat: list[dict[str, str]]) -> bool:
        nonlocal retries
        attempts = AsyncRetrying(
            wait=wait_random_exponential(multiplier=0.5, max=10),
            stop=stop_after_attempt(MAX_RETRIES + 1),
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        try:
            async for attempt in attempts:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        retries += 1
                    async with semaphore:
                        await client.chat.complete_async(
                            model=MODEL,
                            messages=chat,
                            response_format={"type": "json_object"},  # type: ignore[arg-type]
                        )
        except Exception:  # noqa: BLE001 - a failed row is counted, not raised
            return False
        return True

    async def main() -> list[bool]:
        return list(await asyncio.gather(*(one(m) for m in messages)))

    results = asyncio.run(main())
    Path(out).mkdir(parents=True, exist_ok=True)
    summary = {"ok": sum(results), "failed": len(results) - sum(results), "retries": retries}
    (Path(out) / "baseline.json").write_bytes(orjson.dumps(summary))


# --- the matrix and the report -------------------------------------------------------------------


def table(outcomes: list[Outcome]) -> str:
    """The markdown table for README.md."""
    lines = [
        "| limit | faults | client | rows | efficiency (active) | efficiency (process) | CPU s / 1k req (all / marginal) | retries | 429s | Retry-After violations (early arrivals) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.limit_rps} RPS | {'10%' if o.faults != 'none' else 'none'} | {o.client} | {o.ok_rows}/{o.rows} "
            f"| {o.efficiency:.1%} | {o.efficiency_process:.1%} | {o.cpu_s_per_1000:.2f} / {o.marginal_cpu_s_per_1000:.2f} "
            f"| {o.retries} | {o.rate_limited} | {o.retry_after_violations} ({o.early_arrivals}) |"
        )
    return "\n".join(lines)


def write_readme_table(text: str) -> None:
    """Replace the table between the throughput markers of benchmarks/README.md."""
    readme = README.read_text(encoding="utf-8")
    if BEGIN not in readme or END not in readme:
        raise RuntimeError(f"{README} lacks the {BEGIN} ... {END} markers")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 RPS, no faults, engine/http only")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="workload size: seconds at the limit"
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="do not rewrite benchmarks/README.md"
    )
    args = parser.parse_args()

    limits = [100] if args.quick else [100, 400]
    fault_specs = [""] if args.quick else ["", FAULTS_10]
    clients = ["engine/http"] if args.quick else ["engine/http", "engine/sdk", "baseline/sdk"]
    from batchjudge.datasets.synth import write_synth

    outcomes: list[Outcome] = []
    work = Path(tempfile.mkdtemp(prefix="bj-throughput-"))
    try:
        max_rows = int(max(limits) * args.seconds)
        data = write_synth(work / "data", rows=max_rows, seed=0)[0]
        startup: dict[str, float] = {}
        for rps in limits:
            rows = int(rps * args.seconds)
            for faults in fault_specs:
                with emulator(rps, faults) as url:
                    warm(url, data, rows)
                    for client in clients:
                        if client not in startup:
                            startup[client] = startup_cpu(client, url, data, work)
                        n = rows if client == "engine/http" else min(rows, SDK_ROWS_CAP)
                        outcome = measure(
                            client,
                            url,
                            data,
                            work,
                            rows=n,
                            rps=rps,
                            faults=faults,
                            startup_cpu=startup[client],
                        )
                        outcomes.append(outcome)
                        print(orjson.dumps(asdict(outcome)).decode(), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = RESULTS.with_name("throughput-quick.json") if args.quick else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "throughput",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
        },
        "latency_ms": LATENCY,
        "faults_10": FAULTS_10,
        "model": MODEL,
        "seconds": args.seconds,
        "startup_cpu_s": startup,
        "runs": [asdict(o) for o in outcomes],
    }
    results.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    markdown = table(outcomes)
    print(markdown)
    if not args.quick and not args.no_readme:
        write_readme_table(markdown)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "baseline-client":
        _, _, url_, data_, rows_, concurrency_, out_ = sys.argv
        baseline_client(url_, data_, int(rows_), int(concurrency_), out_)
    else:
        main()
