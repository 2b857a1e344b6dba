"""The judge as a step of a user's own Ray Data pipeline::

    ds = ray.data.read_parquet("s3://bucket/pairs/")
    ds = batchjudge.ray.judge(ds, provider="mistral", model="mistral-small-latest", rps=5)
    ds.write_parquet("s3://bucket/judged/")

It is the same judging worker ``--engine ray`` runs (the reader's preparation, the online
judge, the result building), with one shared limiter per endpoint, so a 429 anywhere pauses
every worker and ``rps`` is the limit of all of them together. It adds the result columns and
keeps the dataset's own. It writes no run directory: resuming is the pipeline's business
(Ray Data's checkpointing, or filtering ``row_id``\\ s already written). The workers of a
machine share a pause through one 16-byte file in ``/dev/shm`` per endpoint and driver job
(:func:`~._engine.board_names`), deleted from the driver's machine when it exits.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.data import Dataset

from batchjudge.engine.config import RunConfig
from batchjudge.engine.source import parse_columns
from batchjudge.errors import ConfigError, InputError
from batchjudge.ray._actors import start_limiter
from batchjudge.ray._engine import cluster_cpus, judged

__all__ = ["judge"]


def judge(ds: Dataset, config: RunConfig | None = None, *, workers: int | None = None, **options: Any) -> Dataset:
    """``ds`` with the result columns (``row_id``, ``status``, ``verdict``, ``score`` … as in
    ``results/*.parquet``) added to each row, judged by ``workers`` actors.

    Pass a :class:`~batchjudge.RunConfig` or its options (``provider``, ``model``, ``prompt``,
    ``columns``, ``base_url``, ``concurrency``, ``rps``, ``tpm``…; ``inputs`` and ``out`` are not
    used). A row's ``row_id`` is its ``id`` column, else a hash of its premise and hypothesis.
    Result columns replace input columns of the same name. ``workers`` defaults to the
    cluster's CPUs less one. Raises ConfigError/InputError before anything runs when the options
    or the dataset's columns cannot work.
    """
    if config is None:
        config = RunConfig(inputs=[], out="", **options)
    elif options:
        raise ConfigError(f"judge(): pass a RunConfig or options, not both ({', '.join(sorted(options))})")
    if config.mode != "online":
        raise ConfigError("batchjudge.ray.judge needs mode='online'")
    config.validate()
    if workers is not None and workers < 1:
        raise ConfigError(f"judge(): workers must be >= 1, got {workers}")
    _check_columns(ds, config)
    if workers is None:
        if not ray.is_initialized():
            ray.init()
        workers = cluster_cpus() - 1 or 1
    limiters = [start_limiter(config) for _ in config.base_urls]
    return judged(ds, config, limiters, workers=workers, keyed=False)


def _check_columns(ds: Dataset, config: RunConfig) -> None:
    """Refuse a dataset without the premise and hypothesis columns the config names."""
    schema = ds.schema()
    names = set(schema.names) if schema is not None else set()
    mapping = parse_columns(config.columns)
    for role in ("premise", "hypothesis"):
        if mapping[role] not in names:
            raise InputError(
                f"dataset: missing column {mapping[role]!r} ({role}); columns are {', '.join(sorted(names)) or '(none)'}"
                + (f" — map one with columns={{'{role}': NAME}}" if mapping[role] == role else "")
            )
