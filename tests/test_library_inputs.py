"""The library takes what people have (issue 29, item 3): a path string or Path, a list of
them, a glob, a polars DataFrame or LazyFrame, a pyarrow Table or dataset, a pandas DataFrame;
anything else is a TypeError naming the type. A table in memory is keyed and fingerprinted
like a file, so the same frame resumes its run and an edited one is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import batchjudge
from batchjudge import RunConfig
from batchjudge.errors import ConfigError, InputError


def _judged(out: Path) -> list[tuple[str, int | None, float | None]]:
    results = pl.concat([pl.read_parquet(p) for p in sorted((out / "results").glob("*.parquet"))])
    return sorted(zip(results["row_id"], results["verdict"], results["score"], strict=True))


@pytest.fixture
def pairs(write_pairs: Callable[..., Path]) -> Path:
    """40 labelled pairs with an ``id`` column, so every kind of input keys its rows alike."""
    path = write_pairs(40)
    table = pq.read_table(path)
    pq.write_table(table.append_column("id", pa.array([f"pair-{i}" for i in range(table.num_rows)])), path)
    return path


def _kinds(path: Path) -> dict[str, Any]:
    return {
        "path string": str(path),
        "Path": path,
        "polars DataFrame": pl.read_parquet(path),
        "polars LazyFrame": pl.scan_parquet(path),
        "pyarrow Table": pq.read_table(path),
        "pyarrow dataset": ds.dataset(path),
        "pandas DataFrame": pd.read_parquet(path),
    }


def test_the_library_over_a_path_string_and_each_kind_of_table_judges_as_over_the_file(
    pairs: Path, tmp_path: Path
) -> None:
    batchjudge.run(RunConfig(inputs=[pairs], out=tmp_path / "file"))
    expected = _judged(tmp_path / "file")
    assert len(expected) == 40
    for name, inputs in _kinds(pairs).items():
        out = tmp_path / name.replace(" ", "-")
        result = batchjudge.run(RunConfig(inputs=inputs, out=out))
        assert result.complete and result.counts["ok"] == 40, name
        assert _judged(out) == expected, name


def test_a_table_without_ids_gets_position_keys_under_a_stable_name(write_pairs: Callable[..., Path],
                                                                    tmp_path: Path) -> None:
    path = write_pairs(12)
    batchjudge.run(RunConfig(inputs=str(path), out=tmp_path / "file"))
    batchjudge.run(RunConfig(inputs=pl.read_parquet(path), out=tmp_path / "frame"))
    batchjudge.run(RunConfig(inputs=pq.read_table(path), out=tmp_path / "table"))
    assert [v for _, v, _ in _judged(tmp_path / "frame")] != []
    assert _judged(tmp_path / "frame") == _judged(tmp_path / "table")  # same keys: <dataframe>, position, text
    assert sorted(v for _, v, _ in _judged(tmp_path / "frame")) == sorted(v for _, v, _ in _judged(tmp_path / "file"))
    meta = json.loads((tmp_path / "frame" / "run.json").read_text())
    assert meta["config"]["inputs"] == ["<dataframe>"] and meta["command"] is None
    from batchjudge.report import load_run
    from batchjudge.report.rows import write_rows

    with pytest.raises(InputError, match=r"table in memory \(<dataframe>\).*join results/\*.parquet with your table"):
        write_rows(load_run(tmp_path / "frame"), tmp_path / "rows.parquet")


def test_a_relative_path_string_and_a_glob_string_are_one_input_each(
    write_pairs: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pairs(6, name="a.parquet")
    write_pairs(4, name="b.parquet", start=6)
    monkeypatch.chdir(tmp_path)
    assert batchjudge.run(RunConfig(inputs="a.parquet", out="one")).total == 6
    assert batchjudge.run(RunConfig(inputs="*.parquet", out="both")).total == 10
    assert batchjudge.run(RunConfig(inputs=("a.parquet", Path("b.parquet")), out="list")).total == 10


@pytest.mark.parametrize(("inputs", "named"), [
    (42, "builtins.int"),
    (b"pairs.parquet", "builtins.bytes"),
    ({"premise": ["p"]}, "builtins.dict"),
    (["pairs.parquet", 3], "builtins.int"),
    ([pl.DataFrame({"premise": ["p"]})], "polars.*DataFrame; give the table alone, not in a list"),
])
def test_anything_else_is_a_type_error_naming_its_type(inputs: object, named: str, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=named):
        RunConfig(inputs=inputs, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_same_frame_resumes_its_run_and_an_edited_frame_is_refused(pairs: Path, tmp_path: Path) -> None:
    frame = pl.read_parquet(pairs)
    out = tmp_path / "run"
    first = batchjudge.run(RunConfig(inputs=frame, out=out, limit=10))
    assert first.limited and first.counts["done"] == 10
    again = batchjudge.run(RunConfig(inputs=frame, out=out))
    assert again.complete and again.stats["finished"] == 30  # the 10 judged before are kept
    edited = frame.with_columns(pl.when(pl.col("id") == "pair-3").then(1 - pl.col("target")).otherwise(pl.col("target"))
                                .alias("target"))
    with pytest.raises(InputError, match="<dataframe> changed since the run read it"):
        batchjudge.run(RunConfig(inputs=edited, out=out))


def test_a_table_missing_a_column_is_one_input_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="<dataframe>: missing column 'hypothesis'"):
        batchjudge.run(RunConfig(inputs=pl.DataFrame({"premise": ["a"]}), out=tmp_path / "run"))


def test_a_ray_run_refuses_a_table_in_memory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--engine ray reads its inputs from files"):
        batchjudge.run(RunConfig(inputs=pl.DataFrame({"premise": ["a"], "hypothesis": ["b"]}), out=tmp_path / "run",
                                 engine="ray"))
