"""Deterministic dataset surgery: grouped splits, class balancing, weighted mixing.

Every function takes an explicit ``seed`` (or ``None`` for "keep the first rows in order",
the cookbook's own rule) and returns new tables; kept rows stay in their input order unless
the function's purpose is to shuffle (:func:`mix`). Same input and seed, same output, on
every machine: randomness comes only from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from batchjudge.datasets.schema import with_split
from batchjudge.errors import ConfigError, InputError

__all__ = ["allocate", "balance", "grouped_split", "mix"]


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise InputError(f"missing column {name!r} (found {table.column_names})")
    return table.column(name)


def grouped_split(
    table: pa.Table,
    *,
    test_size: float,
    seed: int,
    group_column: str = "doc_id",
    names: tuple[str, str] = ("train", "val"),
) -> tuple[pa.Table, pa.Table]:
    """Split ``table`` by group: every row of one ``group_column`` value lands on one side.

    ``round(test_size * groups)`` groups (at least one, and at least one left for the first
    side) are drawn at random for the second table. When the table has a ``split`` column it
    is rewritten to ``names``. Raises :class:`ConfigError` when fewer than two groups exist.
    """
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1, got {test_size}")
    groups = pc.unique(_column(table, group_column))
    n_groups = len(groups)
    if n_groups < 2:
        raise ConfigError(f"cannot split {n_groups} {group_column} value(s) into two sides")
    n_test = min(max(1, round(test_size * n_groups)), n_groups - 1)
    chosen = np.random.default_rng(seed).choice(n_groups, size=n_test, replace=False)
    test_groups = groups.take(pa.array(np.sort(chosen)))
    in_test = pc.is_in(_column(table, group_column), value_set=test_groups)
    first = table.filter(pc.invert(in_test))
    second = table.filter(in_test)
    return with_split(first, names[0]), with_split(second, names[1])


def balance(
    table: pa.Table,
    *,
    seed: int | None,
    by_group: bool = False,
    group_column: str = "doc_id",
    target_column: str = "target",
) -> pa.Table:
    """Downsample to exactly as many consistent as inconsistent rows.

    Overall, or (``by_group=True``) within each ``group_column`` value, where a group that
    lacks one class is dropped. ``seed=None`` keeps the first rows of each class in input
    order (what the cookbook did with ``drop_duplicates``); a seed keeps a random subset.
    Kept rows stay in input order.
    """
    targets = _column(table, target_column)
    if targets.null_count:
        raise InputError(f"column {target_column!r} has {targets.null_count} missing label(s)")
    n = table.num_rows
    priority = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    group = pl.from_arrow(_column(table, group_column)) if by_group else pl.repeat(0, n, eager=True)
    frame = pl.DataFrame(
        {"g": group, "t": pl.from_arrow(targets).cast(pl.Int8), "p": priority}
    )
    quota = pl.min_horizontal(
        (pl.col("t") == 1).sum().over("g"), (pl.col("t") == 0).sum().over("g")
    )
    rank = pl.col("p").rank("ordinal").over(["g", "t"])
    keep = frame.select((rank <= quota).alias("keep"))["keep"].to_arrow()
    return table.filter(keep)


def allocate(weights: Sequence[float], rows: int) -> list[int]:
    """Split ``rows`` into integer counts proportional to ``weights`` (largest remainder).

    The counts sum to ``rows`` exactly; ties go to the earlier weight.
    """
    if rows < 0:
        raise ConfigError(f"rows must be >= 0, got {rows}")
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    exact = [w / total * rows for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: rows - sum(counts)]:
        counts[i] += 1
    return counts


def mix(parts: Sequence[tuple[pa.Table, float]], *, rows: int, seed: int) -> pa.Table:
    """Draw ``rows`` rows from weighted tables, without replacement, shuffled together.

    ``mix([(fib, 0.7), (usb, 0.3)], rows=1000, seed=0)`` takes exactly 700 random FIB rows
    and 300 random USB rows. Columns a table lacks are filled with nulls. Raises
    :class:`ConfigError` when a table has fewer rows than its share asks for.
    """
    counts = allocate([weight for _, weight in parts], rows)
    rng = np.random.default_rng(seed)
    drawn: list[pa.Table] = []
    for number, ((table, _), count) in enumerate(zip(parts, counts, strict=True), start=1):
        if count > table.num_rows:
            raise ConfigError(
                f"mix part {number} has {table.num_rows} rows but its weight asks for {count}"
            )
        picked = np.sort(rng.choice(table.num_rows, size=count, replace=False))
        drawn.append(table.take(pa.array(picked, pa.int64())))
    mixed = pa.concat_tables(drawn, promote_options="default")
    return mixed.take(pa.array(rng.permutation(mixed.num_rows), pa.int64()))
