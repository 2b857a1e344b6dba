"""Throughput against a strict rate limit, in the four situations a real account meets.

The emulator runs in its own process (``batchjudge emulator``): a strict window counted by
arrival time (a request arriving while N others arrived in the last second is refused),
429 + ``Retry-After`` in whole seconds, 300±150 ms latency, 2% injected 500s. Each client runs
in its own process under its own API key, so its CPU time (``getrusage(RUSAGE_CHILDREN)``) and
the server's counters are its own. Scenarios:

- ``known``: the client is told the limit (``--rps N``); the server announces nothing about
  the per-second window (as the hosted API).
- ``announced``: no limit flags; the server announces its limits in headers
  (``--headers second``: ``x-ratelimit-limit-req-second`` ...).
- ``silent``: no limit flags, and the server announces nothing (``--headers none``).
- ``tokens``: a token-bound workload: ~1,000-token prompts against a tokens-per-minute limit
  the server announces (``x-ratelimit-limit-tokens-minute``), no client flags.
- ``stalls``: ``known``, against a server whose event loop stops for 40 ms at one request in
  a thousand (``--faults stall=40:0.001``, every 2.5 s at 400 RPS): the requests arriving
  meanwhile are stamped late and together, as a garbage collection or a busy machine does to
  a real server (:mod:`batchjudge.engine.stalls`).

Clients: ``cli/http`` (``batchjudge run``, the default HTTP/1.1 transport), ``lib/http``
(``batchjudge.run`` from Python), ``cli/sdk`` (``--transport sdk``, the official SDK), and
``baseline/sdk`` (``asyncio.gather`` + a semaphore + tenacity around the SDK, as most users
write it). Each (scenario, limit) runs every client ``--repeats`` times, interleaved.

Reported per run: efficiency = (ok rows / limit) / time, where *active* time runs from the
server's first request of the client to its last answer and *process* time is the client's
whole wall time (start-up included); *steady*: the requests the server admitted a second
(500s included) from the client's third second to its last full one, over the limit (the
pacer's use of the window once start-up is over); for ``tokens``, the tokens the server
admitted over the token ceiling of the same time, and the same after the first minute
(*steady*); how long the client took from its launch to its first request's arrival and
from its last answer to its exit; 429s;
Retry-After violations (arrivals more than 25 ms after a 429 and before its Retry-After) and
early arrivals (any arrival before it); 429s after the first episode (the first second of
429s); client CPU per 1,000 requests the server saw, everything included and marginal (a
one-row run's CPU subtracted).

Before measuring, each emulator answers the workload once as a batch job to fill its
tokenizer and judge caches (the server shares two cores with the client and must not be what
is measured). Results: ``results/throughput.json`` and the tables in ``README.md``.

    python benchmarks/throughput.py                      # every scenario, 3 repeats (~45 min)
    python benchmarks/throughput.py --scenario known --limits 100 --repeats 1 --seconds 10
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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

MODEL = "mistral-small-latest"
LATENCY = "300:150"
FAULTS = "500:0.02"
TIMEOUT_S = 10
MAX_RETRIES = 8
SDK_ROWS_CAP = 1000
"""The SDK clients cannot approach 400 RPS (12-26 ms of CPU per request); cap their rows."""
TOKENS_TPM = 300_000
TOKENS_SECONDS = 150.0
"""A token-bound run must outlast the first minute (a fresh window admits a whole minute's
tokens at once) to measure the steady state."""
ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "throughput.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- throughput:begin -->", "<!-- throughput:end -->"


@dataclass(frozen=True)
class Scenario:
    name: str
    server: tuple[str, ...]
    client_flags: bool
    """Whether the client is told the limit (``--rps``)."""
    clients: tuple[str, ...]
    faults: str = FAULTS
    """The emulator's injected faults."""


SCENARIOS = {
    "known": Scenario("known", (), True, ("cli/http", "lib/http", "cli/sdk", "baseline/sdk")),
    "announced": Scenario("announced", ("--headers", "second"), False, ("cli/http", "lib/http")),
    "silent": Scenario("silent", ("--headers", "none"), False, ("cli/http", "lib/http")),
    "tokens": Scenario("tokens", (), False, ("cli/http", "lib/http")),
    "stalls": Scenario("stalls", (), True, ("cli/http", "lib/http"), faults=f"{FAULTS},stall=40:0.001"),
}


@dataclass
class Outcome:
    """One client run against one emulator configuration."""

    scenario: str
    client: str
    limit: int
    repeat: int
    rows: int
    ok_rows: int
    failed_rows: int
    requests: int
    retries: int
    rate_limited: int
    rate_limited_after_first_episode: int
    retry_after_violations: int
    early_arrivals: int
    active_s: float
    process_s: float
    efficiency: float
    efficiency_process: float
    efficiency_steady: float | None
    cpu_s: float
    cpu_s_per_1000: float
    marginal_cpu_s_per_1000: float
    concurrency: int | None
    """What the client was given (None: the engine sized it; ``limits_seen`` says to what)."""
    limits_seen: str = ""
    startup_cpu_s: float | None = None
    """The one-row run's CPU subtracted for the marginal figure (None: a run kept from before
    each run carried it; the results file's top-level figure is only the latest sitting's)."""
    first_request_after_s: float | None = None
    """From the client's launch to its first request's arrival at the server (None: a run kept
    from before this was measured)."""
    exit_after_last_answer_s: float | None = None
    """From the server's last answer to the client's exit."""
    measured_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    extra: dict[str, Any] = field(default_factory=dict)


# --- the emulator process ------------------------------------------------------------------


def emulator_url(child: subprocess.Popen[str]) -> str:
    """The base URL a ``batchjudge emulator`` child prints on its first line of stdout."""
    assert child.stdout is not None
    banner = child.stdout.readline()
    match = re.search(r"(http://\S+)", banner)
    if match is None:
        raise RuntimeError(f"the emulator did not start: {banner!r}")
    return match.group(1)


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """``batchjudge emulator --port 0 ARGS`` in a child process; yields its base URL once it
    answers."""
    child = subprocess.Popen([sys.executable, "-m", "batchjudge", "emulator", "--port", "0", *args],
                             stdout=subprocess.PIPE, text=True)
    try:
        url = emulator_url(child)
        for _ in range(100):
            try:
                stats(url)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        child.terminate()
        child.wait(timeout=30)
        child.stdout.close()  # type: ignore[union-attr]


@contextmanager
def emulator(scenario: Scenario, limit: int, seed: int = 0) -> Iterator[str]:
    """The emulator of one scenario at one limit; yields its base URL."""
    window = ["--tpm", str(limit)] if scenario.name == "tokens" else ["--rps", str(limit)]
    with serving(*window, "--latency-ms", LATENCY, "--faults", scenario.faults, "--seed", str(seed),
                 *scenario.server) as url:
        yield url


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=10) as response:
        payload: dict[str, Any] = orjson.loads(response.read())
    return payload


def _messages(premises: list[str], hypotheses: list[str]) -> list[list[dict[str, str]]]:
    """The exact messages ``batchjudge run`` sends with its default prompt."""
    from batchjudge.adapters.prompts import DEFAULT_PRESET, PRESETS, PromptAdapter

    adapter = PromptAdapter(PRESETS[DEFAULT_PRESET], MODEL, count_tokens=False)
    return [adapter.render(p, h).messages for p, h in zip(premises, hypotheses, strict=True)]


def warm(url: str, data: Path, rows: int) -> None:
    """Answer the workload once as a batch job, filling the emulator's caches (batch jobs
    are outside the rate limits)."""
    from mistralai.client import Mistral

    table = pl.read_parquet(data).head(rows)
    lines = [
        orjson.dumps({"custom_id": i, "body": {"messages": m, "response_format": {"type": "json_object"}}})
        for i, m in zip(table["id"], _messages(table["premise"].to_list(), table["hypothesis"].to_list()), strict=True)
    ]
    client = Mistral(api_key="bench-warm", server_url=url)
    uploaded = client.files.upload(file={"file_name": "warm.jsonl", "content": b"\n".join(lines)}, purpose="batch")
    job = client.batch.jobs.create(input_files=[uploaded.id], endpoint="/v1/chat/completions", model=MODEL)
    while job.status in ("QUEUED", "RUNNING"):
        time.sleep(0.5)
        job = client.batch.jobs.get(job_id=job.id)
    if job.status != "SUCCESS":
        raise RuntimeError(f"warm-up batch ended {job.status} ({job.succeeded_requests}/{rows})")


def write_data(work: Path, rows: int, *, long_prompts: bool) -> Path:
    """Synthetic rows (~1,700-character documents); with ``long_prompts`` three documents
    are joined into one (~1,000 tokens a prompt)."""
    from batchjudge.datasets.synth import write_synth

    if not long_prompts:
        return write_synth(work / "data", rows=rows, seed=0)[0]
    source = pl.read_parquet(write_synth(work / "short", rows=rows * 3, seed=1)[0])
    premises = source["premise"].to_list()
    table = source.head(rows).with_columns(
        pl.Series("premise", [" ".join(premises[3 * i : 3 * i + 3]) for i in range(rows)])
    )
    path = work / "long" / "long.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(path)
    return path


# --- the clients -----------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _client_command(
    client: str, url: str, data: Path, out: Path, rows: int, rps: int | None, concurrency: int | None
) -> list[str]:
    """The client's command; ``concurrency`` None leaves it to the engine (``cli/``, ``lib/``)."""
    if client.startswith("cli/"):
        command = [
            sys.executable, "-m", "batchjudge", "run", str(data), "--out", str(out),
            "--provider", "mistral", "--base-url", url, "--model", MODEL,
            "--transport", client.split("/")[1],
            "--timeout", str(TIMEOUT_S), "--max-retries", str(MAX_RETRIES), "--limit", str(rows),
            "--quiet",
        ]  # fmt: skip
        return command + (["--concurrency", str(concurrency)] if concurrency else []) + (["--rps", str(rps)] if rps else [])
    sub = "lib-client" if client == "lib/http" else "baseline-client"
    return [sys.executable, str(Path(__file__).resolve()), sub, url, str(data), str(rows), str(concurrency or 0),
            str(out), str(rps or 0)]


def _run_client(
    command: list[str], key: str, client_src: Path | None
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run one client process (the ``cli/`` clients from ``client_src``'s ``batchjudge`` when
    given: ``--client-src``); (cpu seconds, wall seconds, the finished process)."""
    env = {**os.environ, "MISTRAL_API_KEY": key, "WEAVE_DISABLED": "true", "WANDB_ERROR_REPORTING": "false"}
    cwd = None
    if client_src is not None and command[1:3] == ["-m", "batchjudge"]:
        env["PYTHONPATH"], cwd = str(client_src), client_src  # its own cwd, so ours cannot shadow it
    cpu, wall = _children_cpu(), time.monotonic()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    return _children_cpu() - cpu, time.monotonic() - wall, done


def _rows_outcome(client: str, out: Path) -> tuple[int, int, int, str]:
    """(ok rows, failed rows, retries, the limits the engine ended with) as the client saw them."""
    if client.startswith(("cli/", "lib/")):
        results = pl.read_parquet(sorted((out / "results").glob("*.parquet")))
        ok = int((results["status"] == "ok").sum())
        limits = str(orjson.loads((out / "run.json").read_bytes()).get("limits", ""))
        return ok, results.height - ok, int(results["attempts"].sum()) - results.height, limits
    summary_b = orjson.loads((out / "baseline.json").read_bytes())
    return summary_b["ok"], summary_b["failed"], summary_b["retries"], ""


def measure(
    scenario: Scenario, client: str, url: str, data: Path, work: Path, *, rows: int, limit: int,
    repeat: int, startup_cpu: float, client_src: Path | None = None,
) -> Outcome:
    """One client run under its own API key; the server's counters for that key."""
    from batchjudge.emulator.state import key_label

    tokens = scenario.name == "tokens"
    rps = None if tokens else limit
    # The engine sizes its own concurrency (the issue-26 change); the hand-written loop needs one.
    concurrency = math.ceil(limit * 0.6) if client.startswith("baseline/") else None
    out = work / f"{scenario.name}-{client.replace('/', '-')}-{limit}-{repeat}"
    key = f"bench-{out.name}"
    _wait_until_idle(url)
    origin = _server_origin(url)
    launched = time.monotonic()
    cpu, wall, done = _run_client(
        _client_command(client, url, data, out, rows, rps if scenario.client_flags else None, concurrency), key,
        client_src,
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{client} failed ({done.returncode}): {done.stderr[-2000:]}")
    seen = stats(url)["keys"][key_label(key)]
    ok, failed, retries, limits_seen = _rows_outcome(client, out)
    requests = seen["chat_completions"]
    active = seen["last_chat_s"] - seen["first_chat_s"]
    per_second = limit / 60.0 if tokens else float(limit)
    served = float(seen.get("admitted_tokens", 0)) if tokens else float(ok)
    if tokens:
        steady = _steady_token_share(out, limit) if active > 75 else None
    else:
        steady = _steady_window_use(seen.get("admitted_per_second", []), limit)
    after_first = _429s_after_first_episode(out)
    return Outcome(
        scenario=scenario.name, client=client, limit=limit, repeat=repeat, rows=rows, ok_rows=ok,
        failed_rows=failed, requests=requests, retries=retries, rate_limited=seen["rate_limited"],
        rate_limited_after_first_episode=after_first,
        retry_after_violations=seen["retry_after_violations"], early_arrivals=seen["early_arrivals"],
        active_s=round(active, 3), process_s=round(wall, 3),
        efficiency=round(served / per_second / active, 4),
        efficiency_process=round(served / per_second / wall, 4),
        efficiency_steady=steady,
        cpu_s=round(cpu, 3), cpu_s_per_1000=round(cpu * 1000 / requests, 3),
        marginal_cpu_s_per_1000=round(max(0.0, cpu - startup_cpu) * 1000 / requests, 3),
        concurrency=concurrency, limits_seen=limits_seen, startup_cpu_s=round(startup_cpu, 3),
        first_request_after_s=round(origin + seen["first_chat_s"] - launched, 3),
        exit_after_last_answer_s=round(launched + wall - origin - seen["last_chat_s"], 3),
    )  # fmt: skip


def _wait_until_idle(url: str, most: float = 15.0) -> None:
    """Wait until the server has no request in flight: a client that exits leaves the replies
    it no longer waits for (the baseline's, at 400 RPS) still being served, and the next
    client's start must not share the server with them."""
    deadline = time.monotonic() + most
    while stats(url)["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)


def _server_origin(url: str) -> float:
    """The server's start on this process's monotonic clock (CLOCK_MONOTONIC is one clock for
    every process of the machine), to place its first and last chat on the client's timeline."""
    asked = time.monotonic()
    uptime = stats(url)["uptime_s"]
    return (asked + time.monotonic()) / 2 - uptime


def _429s_after_first_episode(out: Path) -> int:
    """429s the client met more than a second after its first one (from its own log)."""
    log = out / "bench-429s.json"
    if not log.exists():
        return -1
    times = orjson.loads(log.read_bytes())
    return sum(1 for t in times if t > times[0] + 1.0) if times else 0


def _steady_window_use(per_second: list[int], limit: int) -> float | None:
    """Requests the server admitted a second, from the client's third second to its last full
    one, over the limit: how much of the window the pacer used once start-up (a probe, a first
    429 episode) was over and before the run's last replies drained. Admitted requests include
    those answered with a 500: the window counted them."""
    steady = per_second[2:-1]
    return round(sum(steady) / len(steady) / limit, 4) if steady else None


def _steady_token_share(out: Path, tpm: int) -> float | None:
    """Tokens the client's replies used after its first 60 s, over the ceiling of that time."""
    log = out / "bench-usage.json"
    if not log.exists():
        return None
    usage = orjson.loads(log.read_bytes())  # [[seconds since first send, tokens], ...]
    if not usage:
        return None
    end = usage[-1][0]
    later = sum(tokens for t, tokens in usage if t >= 60.0)
    return round(later / (tpm / 60.0 * (end - 60.0)), 4) if end > 75 else None


def _compile(checkout: Path) -> None:
    """Byte-compile the client's package, as ``pip install`` does: an editable checkout run
    with ``PYTHONDONTWRITEBYTECODE`` set (as on the dev machines) never caches its bytecode, so
    every client would compile its ~50 modules again (0.25-0.3 s of CPU a run) and its
    start-up CPU would be a development artefact, not what an installed user pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "batchjudge")], check=True)


def startup_cpu(client: str, url: str, data: Path, work: Path, client_src: Path | None = None) -> float:
    """CPU of a one-row run: imports, setup — what a longer run does once."""
    out = work / f"startup-{client.replace('/', '-')}"
    cpu, _, done = _run_client(_client_command(client, url, data, out, 1, 100, 1), f"bench-{out.name}", client_src)
    if done.returncode != 0:
        raise RuntimeError(f"{client} one-row run failed: {done.stderr[-2000:]}")
    return cpu


# --- the library client (run as a sub-process) -------------------------------------------------


def lib_client(url: str, data: str, rows: int, concurrency: int, out: str, rps: int) -> None:
    """``batchjudge.run`` from Python: the library path, logging its 429s and usage over time."""
    from batchjudge import RunConfig, run
    from batchjudge.engine import limits as limits_module

    original = limits_module.Limits.on_rate_limited
    seen: list[float] = []

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(time.monotonic())
        original(self, *args, **kwargs)

    limits_module.Limits.on_rate_limited = counted  # type: ignore[method-assign]
    usage: list[list[float]] = []
    original_settle = limits_module.Limits.settle

    def settled(self: Any, reservation: Any, reply: Any) -> None:
        usage.append([reservation.sent_at, reply.prompt_tokens + reply.completion_tokens])
        original_settle(self, reservation, reply)

    limits_module.Limits.settle = settled  # type: ignore[method-assign]
    config = RunConfig(
        inputs=[data], out=out, provider="mistral", base_url=url, model=MODEL, concurrency=concurrency or None,
        rps=rps or None, timeout=TIMEOUT_S, max_retries=MAX_RETRIES, limit=rows,
    )  # fmt: skip
    result = run(config)
    start = min((u[0] for u in usage), default=0.0)
    Path(out, "bench-429s.json").write_bytes(orjson.dumps([t - (seen[0] if seen else 0.0) for t in seen]))
    Path(out, "bench-usage.json").write_bytes(orjson.dumps(sorted([u[0] - start, u[1]] for u in usage)))
    sys.exit(result.exit_code)


# --- the baseline client (run as a sub-process) -------------------------------------------------


def baseline_client(url: str, data: str, rows: int, concurrency: int, out: str) -> None:
    """asyncio.gather + semaphore + tenacity around the SDK: the loop most users write."""
    from mistralai.client import Mistral
    from mistralai.client.errors import SDKError
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

    table = pl.read_parquet(data).head(rows)
    messages = _messages(table["premise"].to_list(), table["hypothesis"].to_list())
    client = Mistral(api_key=os.environ["MISTRAL_API_KEY"], server_url=url, timeout_ms=TIMEOUT_S * 1000)
    semaphore = asyncio.Semaphore(concurrency)
    retries = 0

    def retryable(exc: BaseException) -> bool:
        return not isinstance(exc, SDKError) or exc.status_code in (200, 408, 429) or exc.status_code >= 500

    async def one(chat: list[dict[str, str]]) -> bool:
        nonlocal retries
        attempts = AsyncRetrying(
            wait=wait_random_exponential(multiplier=0.5, max=10), stop=stop_after_attempt(MAX_RETRIES + 1),
            retry=retry_if_exception(retryable), reraise=True,
        )  # fmt: skip
        try:
            async for attempt in attempts:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        retries += 1
                    async with semaphore:
                        await client.chat.complete_async(
                            model=MODEL, messages=chat,  # type: ignore[arg-type]
                            response_format={"type": "json_object"},
                        )
        except Exception:  # noqa: BLE001 - a failed row is counted, not raised
            return False
        return True

    async def main() -> list[bool]:
        return await asyncio.gather(*(one(m) for m in messages))

    done = asyncio.run(main())
    Path(out).mkdir(parents=True, exist_ok=True)
    ok = sum(done)
    Path(out, "baseline.json").write_bytes(orjson.dumps({"ok": ok, "failed": len(done) - ok, "retries": retries}))


# --- the report --------------------------------------------------------------------------------


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1%}" if values else "–"


def _after_first(runs: list[Outcome]) -> str:
    known = [o.rate_limited_after_first_episode for o in runs if o.rate_limited_after_first_episode >= 0]
    return f"{statistics.median(known):g}" if known else "–"


def _edges(runs: list[Outcome]) -> str:
    """Median (most) seconds from launch to the first request's arrival, and from the last
    answer to exit: where process time goes besides the active part."""
    first = [o.first_request_after_s for o in runs if o.first_request_after_s is not None]
    last = [o.exit_after_last_answer_s for o in runs if o.exit_after_last_answer_s is not None]
    if not first or not last:
        return "–"
    return f"{statistics.median(first):.2f} ({max(first):.2f}), {statistics.median(last):.2f} ({max(last):.2f})"


def table(outcomes: list[Outcome]) -> str:
    """Medians over repeats, with the range, per (scenario, limit, client); Retry-After
    violations as the most in any run (one is one too many)."""
    lines = [
        "| scenario | limit | client | runs | efficiency active (min–max) | efficiency process | first request, exit: s (most) | steady | "
        "429s (after 1st episode) | Retry-After violations, most in a run (early, median) | CPU s / 1k req (all / marginal) | limits the engine ended with |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, int, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.scenario, o.limit, o.client), []).append(o)
    for (scenario, limit, client), runs in groups.items():
        eff = [o.efficiency for o in runs]
        unit = "TPM" if scenario == "tokens" else "RPS"
        steady = [o.efficiency_steady for o in runs if o.efficiency_steady is not None]
        lines.append(
            f"| {scenario} | {limit:,} {unit} | {client} | {len(runs)} | {_median(eff)} ({min(eff):.1%}–{max(eff):.1%}) "
            f"| {_median([o.efficiency_process for o in runs])} | {_edges(runs)} | {_median(steady)} "
            f"| {statistics.median(o.rate_limited for o in runs):g} ({_after_first(runs)}) "
            f"| {max(o.retry_after_violations for o in runs)} ({statistics.median(o.early_arrivals for o in runs):g}) "
            f"| {statistics.median(o.cpu_s_per_1000 for o in runs):.2f} / {statistics.median(o.marginal_cpu_s_per_1000 for o in runs):.2f} "
            f"| {runs[-1].limits_seen or '–'} |"
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


def _kept_runs(measured: list[Scenario], results: Path) -> list[Outcome]:
    """The runs of the scenarios not measured now, from the last results file: scenarios can
    be measured in separate sittings (each run carries its time)."""
    if not results.exists():
        return []
    names = {s.name for s in measured}
    fields = set(Outcome.__dataclass_fields__)
    runs = orjson.loads(results.read_bytes()).get("runs", [])
    return [Outcome(**{k: v for k, v in r.items() if k in fields}) for r in runs
            if isinstance(r, dict) and "scenario" in r and r["scenario"] not in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all")
    parser.add_argument("--limits", default="100,400", help="requests per second for the request scenarios")
    parser.add_argument("--clients", help="comma-separated subset of each scenario's clients")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="workload size: seconds at the limit")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite benchmarks/README.md")
    parser.add_argument("--client-src", type=Path, help="run the cli/ clients from this checkout (a before/after "
                        "against the same server); writes results/throughput-LABEL.json, not the README")
    parser.add_argument("--label", default="before", help="names the --client-src results")
    args = parser.parse_args()
    client_src, results = None, RESULTS
    if args.client_src is not None:
        client_src, results = args.client_src.resolve(), RESULTS.with_name(f"throughput-{args.label}.json")
        args.no_readme = True
    chosen = [SCENARIOS[n] for n in (args.scenario or list(SCENARIOS))]
    limits = [int(x) for x in args.limits.split(",")]
    wanted = set(args.clients.split(",")) if args.clients else None

    here = Path(__file__).resolve().parents[1]
    for checkout in {here, client_src or here}:  # the library client always runs this checkout's
        _compile(checkout)
    outcomes: list[Outcome] = []
    work = Path(tempfile.mkdtemp(prefix="bj-throughput-"))
    startup: dict[str, float] = {}
    try:
        for scenario in chosen:
            tokens = scenario.name == "tokens"
            for limit in [TOKENS_TPM] if tokens else limits:
                rows = int(limit / 60 / 1000 * TOKENS_SECONDS) if tokens else int(limit * args.seconds)  # ~1,000-token prompts
                data = write_data(work / f"{scenario.name}-{limit}", rows, long_prompts=tokens)
                clients = [c for c in scenario.clients if wanted is None or c in wanted]
                with emulator(scenario, limit) as url:
                    warm(url, data, rows)
                    for client in clients:
                        if client not in startup:
                            startup[client] = startup_cpu(client, url, data, work, client_src)
                    for repeat in range(args.repeats):
                        for client in clients:
                            n = rows if client.endswith("/http") else min(rows, SDK_ROWS_CAP)
                            outcome = measure(scenario, client, url, data, work, rows=n, limit=limit,
                                              repeat=repeat, startup_cpu=startup[client], client_src=client_src)
                            outcomes.append(outcome)
                            print(orjson.dumps(asdict(outcome)).decode(), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    outcomes = _kept_runs(chosen, results) + outcomes
    results.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "throughput",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "latency_ms": LATENCY, "faults": {s.name: s.faults for s in SCENARIOS.values()}, "model": MODEL, "seconds": args.seconds,
        "startup_cpu_s": startup, "runs": [asdict(o) for o in outcomes],
    }  # fmt: skip
    results.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    markdown = table(outcomes)
    print(markdown)
    if not args.no_readme:
        write_readme_table(markdown)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("baseline-client", "lib-client"):
        _, command, url_, data_, rows_, concurrency_, out_, rps_ = sys.argv
        if command == "lib-client":
            lib_client(url_, data_, int(rows_), int(concurrency_), out_, int(rps_))
        else:
            baseline_client(url_, data_, int(rows_), int(concurrency_), out_)
    else:
        main()
