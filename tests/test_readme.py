"""The README cannot rot: every command block in it runs as written, in order.

Blocks are the README's ```bash and ```python fences, run one after another in one scratch
folder laid out as a checkout (``benchmarks/`` beside it, ``../shared`` when the project's
reference data is there), with this environment's ``batchjudge`` on the PATH and no API key.
The first command's set-up prefix (``python3 -m venv .venv && . .venv/bin/activate && pip
install ... &&``) is dropped: the test already runs inside such an environment. A block
preceded by ``<!-- readme-test: skip: REASON -->`` is not run (the reason is required), and
one preceded by ``<!-- readme-test: needs PATH -->`` runs only where that path exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)
_SETUP = re.compile(r"python3 -m venv \.venv && \. \.venv/bin/activate && pip install [^&]*&& ")


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    code: str
    marker: str | None


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, m.start("code")) + 1, m["lang"], _SETUP.sub("", m["code"]), m["marker"])
        for m in _BLOCK.finditer(text)
    ]


def test_every_block_not_run_says_why() -> None:
    for block in readme_blocks():
        if block.marker is None:
            continue
        kind, _, reason = block.marker.partition(":")
        if kind.strip() == "skip":
            assert len(reason.strip()) > 10, f"README line {block.line}: a skipped block must say why"
        else:
            assert block.marker.startswith("needs "), f"README line {block.line}: unknown marker {block.marker!r}"


@pytest.mark.slow
def test_every_readme_block_runs_as_written(tmp_path: Path) -> None:
    checkout = tmp_path / "repo"
    checkout.mkdir()
    (checkout / "benchmarks").symlink_to(ROOT / "benchmarks")
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (tmp_path / "shared").symlink_to(shared)
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path / "home"),
        BATCHJUDGE_HOME=str(tmp_path / "home" / "batchjudge"),
        WEAVE_DISABLED="true",
        WANDB_ERROR_REPORTING="false",
    )
    ran = 0
    for block in readme_blocks():
        if block.marker is not None and block.marker.startswith("skip"):
            continue
        if block.marker is not None and block.marker.startswith("needs "):
            needed = block.marker.removeprefix("needs ").strip()
            if not (checkout / needed).exists():
                continue
        command = ["bash", "-euo", "pipefail", "-c", block.code] if block.lang == "bash" else [sys.executable, "-c", block.code]
        done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, (
            f"README block at line {block.line} failed ({done.returncode}):\n{block.code}\n"
            f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
        )
        ran += 1
    assert ran >= 8
