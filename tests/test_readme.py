"""The README and the docs cannot rot: every command block in them runs as written, in order.

Blocks are the ```bash and ```python fences of the README, and of the docs' pages in the order
of ``mkdocs.yml``'s nav (a page's blocks may use what an earlier page made), run one after
another in one scratch folder laid out as a checkout (``benchmarks/`` beside it, ``../shared``
when the project's reference data is there), with this environment's ``batchjudge`` on the PATH
and no API key.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
_NAV_PAGE = re.compile(r"^\s*- (?:[^:#]+: )?(?P<page>[\w/.-]+\.md)\s*$", re.M)
_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)
_SETUP = re.compile(r"python3 -m venv \.venv && \. \.venv/bin/activate && pip install [^&]*&& ")


@dataclass(frozen=True)
class Block:
    source: str
    line: int
    lang: str
    code: str
    marker: str | None


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(ROOT).as_posix()
    return [
        Block(name, text.count("\n", 0, m.start("code")) + 1, m["lang"], _SETUP.sub("", m["code"]), m["marker"])
        for m in _BLOCK.finditer(text)
    ]


def docs_pages() -> list[Path]:
    """The docs' pages in the nav's order (commented-out entries are pages still to come)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").partition("\nnav:\n")[2]
    return [DOCS / m["page"] for m in _NAV_PAGE.finditer(nav)]


def docs_blocks() -> list[Block]:
    return [block for page in docs_pages() for block in blocks_of(page)]


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    pages = docs_pages()
    assert pages and all(page.is_file() for page in pages), pages
    assert sorted(pages) == sorted(DOCS.glob("*.md"))


@pytest.mark.parametrize("blocks", [lambda: blocks_of(README), docs_blocks], ids=["README", "docs"])
def test_every_block_not_run_says_why(blocks: Callable[[], list[Block]]) -> None:
    for block in blocks():
        if block.marker is None:
            continue
        kind, _, reason = block.marker.partition(":")
        if kind.strip() == "skip":
            assert len(reason.strip()) > 10, f"{block.source} line {block.line}: a skipped block must say why"
        else:
            assert block.marker.startswith("needs "), f"{block.source} line {block.line}: unknown marker {block.marker!r}"


def test_the_readme_is_a_door_not_a_manual() -> None:
    """The manual lives in docs/; the README says what, for whom, the data, the first commands."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    for needed in ("premise", "hypothesis", "target", "MISTRAL_API_KEY", "--dry-run", "3.11", "CSV", "docs/"):
        assert needed in text, needed


@pytest.mark.slow
def test_every_readme_block_runs_as_written(tmp_path: Path) -> None:
    assert _run_in_order(blocks_of(README), tmp_path) >= 1


@pytest.mark.slow
def test_every_docs_block_runs_as_written_in_page_order(tmp_path: Path) -> None:
    assert _run_in_order(docs_blocks(), tmp_path) >= 10


def _run_in_order(blocks: list[Block], tmp_path: Path) -> int:
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
    for block in blocks:
        if block.marker is not None and block.marker.startswith("skip"):
            continue
        if block.marker is not None and block.marker.startswith("needs "):
            needed = block.marker.removeprefix("needs ").strip()
            if not (checkout / needed).exists():
                continue
        command = ["bash", "-euo", "pipefail", "-c", block.code] if block.lang == "bash" else [sys.executable, "-c", block.code]
        done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, (
            f"{block.source} block at line {block.line} failed ({done.returncode}):\n{block.code}\n"
            f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
        )
        ran += 1
    return ran
