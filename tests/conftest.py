"""Fixtures shared across the suite: small datasets the tests make themselves."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("WEAVE_DISABLED", "true")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pairs_table(n: int, *, labelled: bool = True, start: int = 0) -> pa.Table:
    """``n`` small (premise, hypothesis[, target]) rows, half of them with a wrong number."""
    premises = [f"Report {i}: the council approved {i % 97 + 3} new homes in Leeds on Monday." for i in range(start, start + n)]
    hypotheses = [
        f"The council approved {i % 97 + 3} new homes." if i % 2 == 0 else f"The council approved {i % 97 + 500} new homes."
        for i in range(start, start + n)
    ]
    data: dict[str, list[object]] = {"premise": premises, "hypothesis": hypotheses}
    if labelled:
        data["target"] = [1 if i % 2 == 0 else 0 for i in range(start, start + n)]
    return pa.table(data)


@pytest.fixture
def write_pairs(tmp_path: Path) -> Callable[..., Path]:
    """Write a Parquet file of :func:`pairs_table` rows and return its path."""

    def write(n: int = 20, *, name: str = "pairs.parquet", labelled: bool = True, start: int = 0) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pairs_table(n, labelled=labelled, start=start), path)
        return path

    return write
