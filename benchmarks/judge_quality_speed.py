"""Speed of the judge-quality hot paths, and of `report` on large runs.

- ``parse_verdict``: µs per reply for each reply shape (runs once per row in the engine).
- ``PromptAdapter.render``: µs per row with and without exact token counting, and when the
  document must be cut to fit the context.
- ``load_run`` + ``summarize`` (1,000 bootstrap resamples) on result sets of 100k and 1M rows,
  each in a fresh process: wall time and peak RSS.

One core (``os.sched_setaffinity``). ``python benchmarks/judge_quality_speed.py [--max-rows N]``
writes ``benchmarks/results/judge_quality_speed.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

REPLIES = {
    "clean JSON": '{"consistency": 1, "reason": "All statements are supported by the document."}',
    "fenced JSON": 'Here is my answer:\n```json\n{"consistency": 0, "reason": "The year is wrong."}\n```',
    "JSON in prose": 'Sure. {"consistency": 0, "reason": "Invented name."} Let me know!',
    "bare label": "0",
    "unparseable": "The summary seems mostly fine to me.",
}

TEXT = (
    "the council said ferry passengers would wait longer because of new safety measures "
    "introduced after a complaint from a resident in 2019 about vehicles"
)

REPORT_CHILD = r"""
import json, os, resource, sys, time
os.sched_setaffinity(0, {0})
from batchjudge.report import load_prices, load_run, summarize
t = time.perf_counter()
run = load_run(sys.argv[1])
loaded = time.perf_counter() - t
summary = summarize(run, load_prices(None), resamples=1000)
total = time.perf_counter() - t
print(json.dumps({"load_s": loaded, "total_s": total,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "accuracy": summary["accuracy"]}))
"""


def _per_call_us(fn: object, arg: object, seconds: float = 0.5) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            fn(arg)  # type: ignore[operator]
        calls += 200
    return (time.perf_counter() - start) / calls * 1e6


def bench_parsing() -> dict[str, float]:
    from batchjudge.adapters.parsing import parse_verdict

    return {shape: round(_per_call_us(parse_verdict, text), 2) for shape, text in REPLIES.items()}


def bench_render() -> dict[str, float]:
    from batchjudge.adapters.prompts import PRESETS, PromptAdapter

    words = TEXT.split()
    document = " ".join(words[i % len(words)] for i in range(330))  # ~2,000 characters
    hypothesis = "Ferry passengers were warned of longer crossings."
    cases = {
        "estimate (count_tokens=False)": PromptAdapter(PRESETS["zero-shot"], "open-mistral-7b", count_tokens=False),
        "exact count, open-mistral-7b": PromptAdapter(PRESETS["zero-shot"], "open-mistral-7b"),
        "exact count, open-mistral-nemo (Tekken)": PromptAdapter(PRESETS["zero-shot"], "open-mistral-nemo"),
        "exact count + cut to 512 tokens": PromptAdapter(
            PRESETS["zero-shot"], "open-mistral-7b", max_context_tokens=512, max_output_tokens=64),
    }  # fmt: skip
    out = {}
    for name, adapter in cases.items():
        adapter.render(document, hypothesis)  # load the tokenizer outside the timing
        out[name] = round(_per_call_us(lambda _, a=adapter: a.render(document, hypothesis), None), 1)
    return out


def _write_run(path: Path, rows: int) -> None:
    import numpy as np

    from batchjudge.engine.checkpoint import RunDir
    from batchjudge.core.results import RESULT_COLUMNS

    rng = np.random.default_rng(0)
    with RunDir(path) as run_dir:
        run_dir.write_meta({"fingerprint": {}, "config": {"model": "open-mistral-7b"}})
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            target = rng.integers(0, 2, n)
            score = np.clip(rng.normal(0.35 + 0.3 * target, 0.2), 0, 1)
            columns = {
                "row_id": [f"row-{start + i}" for i in range(n)],
                "status": ["ok"] * n,
                "verdict": (score >= 0.5).astype(int).tolist(),
                "score": score.tolist(),
                "reason": ["the summary names a person the document does not mention"] * n,
                "raw_response": ['{"consistency": 1}'] * n,
                "error": [None] * n,
                "attempts": [1] * n,
                "latency_ms": rng.gamma(4, 80, n).tolist(),
                "prompt_tokens": rng.integers(300, 900, n).tolist(),
                "completion_tokens": rng.integers(10, 60, n).tolist(),
                "model": ["open-mistral-7b"] * n,
                "target": target.tolist(),
                "truncated_tokens": [0] * n,
            }
            run_dir.write_part({c: columns[c] for c in RESULT_COLUMNS})


def bench_report(sizes: list[int]) -> list[dict[str, float]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            path = Path(tmp) / f"run-{rows}"
            _write_run(path, rows)
            proc = subprocess.run([sys.executable, "-c", REPORT_CHILD, str(path)],
                                  check=True, capture_output=True, text=True)  # fmt: skip
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            out.append({"rows": rows, **{k: round(v, 3) for k, v in result.items()}})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    sizes = [n for n in (100_000, 1_000_000) if n <= args.max_rows]
    result = {
        "benchmark": "judge_quality_speed",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "parse_verdict_us": bench_parsing(),
        "render_us": bench_render(),
        "report": bench_report(sizes),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judge_quality_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| parse_verdict reply shape | µs per reply |\n|---|---|")
    for shape, us in result["parse_verdict_us"].items():
        print(f"| {shape} | {us} |")
    print("\n| render (zero-shot, ~2,000-character document) | µs per row |\n|---|---|")
    for name, us in result["render_us"].items():
        print(f"| {name} | {us} |")
    print("\n| report rows | load | load + summarize (1,000 resamples) | peak RSS |\n|---|---|---|---|")
    for r in result["report"]:
        print(f"| {r['rows']:,} | {r['load_s']} s | {r['total_s']} s | {r['peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
