"""``export_finetune``: labelled datasets in, checked Mistral fine-tuning JSONL files out.

Steps, each from the package that owns it: read the inputs (:mod:`._inputs`, the datasets
loaders, USB labels repaired), optionally mix them by weight (:func:`batchjudge.datasets.mix`),
run the label-sanity check (:func:`~batchjudge.datasets.sanity.check_labels`), split train and
validation by document (:func:`~batchjudge.datasets.grouped_split`), optionally balance the
classes (:func:`~batchjudge.datasets.balance`), render every row with the evaluation's prompt
adapter (:mod:`._examples`), check it against Mistral's rules (:mod:`._rules`), and write each
file atomically (temporary name, fsync, rename), so a failed export leaves no half file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa

from batchjudge.adapters.finetune._costs import TrainingCost, training_cost
from batchjudge.adapters.finetune._examples import build_example
from batchjudge.adapters.finetune._inputs import load_inputs
from batchjudge.adapters.finetune._rules import (
    MAX_FILE_BYTES,
    MAX_SAMPLE_TOKENS,
    FileStats,
    check_example,
)
from batchjudge.adapters.prompts import DEFAULT_PRESET, PromptAdapter, load_prompt
from batchjudge.adapters.tokens import context_window
from batchjudge.datasets.sanity import check_labels
from batchjudge.datasets.splits import balance, grouped_split, mix
from batchjudge.errors import ConfigError, InputError

__all__ = ["DEFAULT_BASE_MODEL", "ExportOptions", "ExportSummary", "export_finetune"]

DEFAULT_BASE_MODEL = "open-mistral-7b"
"""The cookbook's base model: it sets the tokenizer, the context and the price."""

_ANSWER_TOKENS = 256
"""Room kept for the answer when documents are cut, as ``batchjudge run``'s ``--max-tokens``."""


@dataclass(frozen=True)
class ExportOptions:
    """How to build the files. ``mix`` gives one weight per input (then ``rows`` rows are
    drawn, default as many as the weights allow); ``val_size`` is the share of documents
    held out when a validation file is asked for."""

    prompt: str = DEFAULT_PRESET
    model: str = DEFAULT_BASE_MODEL
    val_size: float = 0.1
    mix: Sequence[float] | None = None
    rows: int | None = None
    balance: bool = False
    seed: int = 0
    max_sample_tokens: int = MAX_SAMPLE_TOKENS
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote and what it costs to train on, plus everything worth a warning."""

    prompt: str
    prompt_sha256: str
    model: str
    train: FileStats
    val: FileStats | None
    cost_per_epoch: TrainingCost
    warnings: list[str] = field(default_factory=list)
    """Label-sanity findings (``code: message``) over all the rows read."""
    notes: list[str] = field(default_factory=list)
    """What loading did to the inputs (USB labels repaired)."""


def _mixed(tables: list[pa.Table], weights: Sequence[float], rows: int | None, seed: int) -> pa.Table:
    if len(weights) != len(tables):
        raise ConfigError(f"--mix gives {len(weights)} weight(s) for {len(tables)} input(s); give one per input")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"--mix weights must be non-negative with a positive sum, got {list(weights)}")
    if rows is None:  # as many rows as the scarcest weighted input allows
        total = sum(weights)
        rows = math.floor(min(t.num_rows * total / w for t, w in zip(tables, weights) if w > 0))
    return mix(list(zip(tables, weights, strict=True)), rows=rows, seed=seed)


def _write(path: Path, table: pa.Table, adapter: PromptAdapter, opts: ExportOptions) -> FileStats:
    """Render, check and write ``table`` as fine-tuning JSONL at ``path``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tokens = longest = truncated = consistent = 0
    columns = table.select(["premise", "hypothesis", "target"]).to_pydict()
    try:
        with tmp.open("wb") as handle:
            for number, (premise, hypothesis, target) in enumerate(
                zip(columns["premise"], columns["hypothesis"], columns["target"], strict=True), start=1
            ):
                where = f"{path}: example {number}"
                try:
                    example, cut = build_example(adapter, premise, hypothesis, int(target))
                except InputError as exc:
                    raise InputError(f"{where}: {exc}") from None
                count = check_example(example, model=adapter.model, where=where, max_tokens=opts.max_sample_tokens)
                handle.write(orjson.dumps(example) + b"\n")
                tokens, longest = tokens + count, max(longest, count)
                truncated += cut > 0
                consistent += int(target)
            handle.flush()
            os.fsync(handle.fileno())
        size = tmp.stat().st_size
        if size > opts.max_file_bytes:
            raise InputError(f"{path}: {size} bytes, over the {opts.max_file_bytes}-byte upload limit; "
                             "export fewer rows (--rows) into several files")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    documents = len(set(table.column("doc_id").to_pylist()))
    return FileStats(path, table.num_rows, tokens, longest, consistent, table.num_rows - consistent,
                     path.stat().st_size, truncated_rows=truncated, documents=documents)


def export_finetune(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    val_out: str | os.PathLike[str] | None = None,
    options: ExportOptions | None = None,
) -> ExportSummary:
    """Write Mistral fine-tuning JSONL for ``inputs`` to ``out`` (and ``val_out``).

    Raises :class:`InputError` / :class:`ConfigError` naming the file, row or option at fault
    before anything is written under a final name.
    """
    opts = options or ExportOptions()
    if not 0.0 < opts.val_size < 1.0:
        raise ConfigError(f"--val-size must be between 0 and 1, got {opts.val_size}")
    if opts.rows is not None and opts.rows < 1:
        raise ConfigError(f"--rows must be >= 1, got {opts.rows}")
    template = load_prompt(opts.prompt)
    adapter = PromptAdapter(
        template, opts.model,
        max_context_tokens=min(context_window(opts.model), opts.max_sample_tokens),
        max_output_tokens=_ANSWER_TOKENS,
    )
    loaded = load_inputs([Path(p) for p in inputs])
    tables = [item.table for item in loaded]
    if opts.mix is not None:
        table = _mixed(tables, opts.mix, opts.rows, opts.seed)
    else:
        table = pa.concat_tables(tables, promote_options="default")
        if opts.rows is not None:
            table = table.slice(0, opts.rows)
    warnings = [f"{w.code}: {w.message}" for w in check_labels(table)]
    train, val = (table, None) if val_out is None else grouped_split(table, test_size=opts.val_size, seed=opts.seed)
    if opts.balance:
        train = balance(train, seed=opts.seed)
        val = None if val is None else balance(val, seed=opts.seed)
    train_summary = _write(Path(out), train, adapter, opts)
    val_summary = None if val is None or val_out is None else _write(Path(val_out), val, adapter, opts)
    return ExportSummary(
        prompt=template.name,
        prompt_sha256=adapter.fingerprint(),
        model=opts.model,
        train=train_summary,
        val=val_summary,
        cost_per_epoch=training_cost(opts.model, train_summary.tokens),
        warnings=warnings,
        notes=[note for item in loaded for note in item.notes],
    )
