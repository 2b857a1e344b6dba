"""The package's structure holds: layers, private modules and acyclic siblings (import-linter
contracts in pyproject.toml), and the CLI starts without loading the engine's heavy parts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_linter_contract_is_kept(tmp_path: Path) -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run(
        [lint, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout and done.stdout.count("KEPT") >= 4


@pytest.mark.parametrize("heavy", ["pyarrow", "polars", "numpy", "aiohttp", "mistralai", "batchjudge.engine.pipeline"])
def test_the_cli_starts_without_loading_the_engine(heavy: str) -> None:
    """``batchjudge --help`` and argument errors must stay fast: the command modules import
    the engine, the report and the datasets only inside the command that needs them."""
    code = f"import sys, batchjudge.cli; print({heavy!r} in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_importing_the_package_loads_nothing_heavy() -> None:
    code = "import sys, batchjudge; print(sorted(m for m in sys.modules if m.startswith(('pyarrow', 'polars', 'aiohttp', 'batchjudge.'))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
