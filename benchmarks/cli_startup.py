"""How long ``batchjudge --help`` and an argument error take to start, before any work.

Two figures, each the median of ``--repeats`` runs in fresh processes:

- **import**: the cumulative import time of ``batchjudge.cli`` (``python -X importtime``), the
  package's own share of start-up (the target is under 0.3 s on the dev machine);
- **wall**: the whole command, interpreter start included, for ``--help``, ``run --help`` and
  ``run`` with a bad option (an argument error must not load the engine).

``--src DIR`` measures another checkout of the project (e.g. a ``git worktree`` of an older
commit) with the same interpreter, so that before/after figures come from one run on one
machine load. Writes ``results/cli_startup.json``.

    python benchmarks/cli_startup.py [--repeats 15] [--src ../old-checkout --label before]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMANDS = {
    "--help": ["--help"],
    "run --help": ["run", "--help"],
    "bad option": ["run", "x.parquet", "--out", "r", "--concurrency", "zero"],
}


def _env(src: Path | None) -> dict[str, str]:
    """The child's environment; with ``src`` its checkout comes first on the path (the child
    also runs from ``src``, so the current directory cannot shadow it)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def import_seconds(src: Path | None) -> float:
    """Cumulative import time of batchjudge.cli in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import batchjudge.cli"],
        env=_env(src), cwd=src, capture_output=True, text=True, check=True,
    )
    for line in reversed(done.stderr.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == "batchjudge.cli":
            return int(parts[1]) / 1e6
    raise RuntimeError("batchjudge.cli not in the import-time report")


def wall_seconds(args: list[str], src: Path | None) -> float:
    """Wall time of one CLI invocation (its exit status is not checked: errors are expected)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from batchjudge.cli import main; main()", *args],
        env=_env(src), cwd=src, capture_output=True, check=False,
    )
    return time.perf_counter() - start


def measure(src: Path | None, repeats: int) -> dict[str, float]:
    figures = {"import": statistics.median(import_seconds(src) for _ in range(repeats))}
    for name, args in COMMANDS.items():
        figures[name] = statistics.median(wall_seconds(args, src) for _ in range(repeats))
    return {k: round(v, 4) for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--src", type=Path, help="measure this checkout's batchjudge instead")
    parser.add_argument("--label", default="current")
    opts = parser.parse_args()
    figures = measure(opts.src, opts.repeats)
    out = HERE / "results" / "cli_startup.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing[opts.label] = {
        "figures_s": figures,
        "repeats": opts.repeats,
        "src": str(opts.src) if opts.src else None,
        "load_average": os.getloadavg()[0],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out.write_text(json.dumps(existing, indent=2) + "\n")
    print(json.dumps({opts.label: figures}, indent=2))


if __name__ == "__main__":
    main()
