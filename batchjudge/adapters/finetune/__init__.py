"""Fine-tuning data: Mistral fine-tuning JSONL built with the evaluation's own prompt adapter.

::

    from batchjudge.adapters.finetune import ExportOptions, export_finetune
    summary = export_finetune(["fib-train.jsonl"], "train.jsonl", val_out="val.jsonl",
                              options=ExportOptions(prompt="ft"))
    summary.train.rows, summary.train.tokens, summary.cost_per_epoch.usd_per_epoch

Evaluate the fine-tuned model with the same ``--prompt``: training and evaluation prompts
are then the same text by construction. :func:`check_file` checks any fine-tuning file
against Mistral's rules; :func:`read_examples` recovers labelled pairs from one.
"""

from __future__ import annotations

from batchjudge.adapters.finetune._costs import (
    MIN_JOB_FEE,
    TRAINING_PRICES,
    TrainingCost,
    training_cost,
    training_price,
)
from batchjudge.adapters.finetune._examples import (
    LabelledPairs,
    answer_for,
    asks_for_reason,
    build_example,
    read_examples,
    training_preset,
)
from batchjudge.adapters.finetune._export import (
    DEFAULT_BASE_MODEL,
    ExportOptions,
    ExportSummary,
    export_finetune,
)
from batchjudge.adapters.finetune._inputs import LoadedInput, load_input, load_inputs
from batchjudge.adapters.finetune._rules import (
    MAX_FILE_BYTES,
    MAX_SAMPLE_TOKENS,
    FileStats,
    check_example,
    check_file,
)

__all__ = [
    "DEFAULT_BASE_MODEL",
    "MAX_FILE_BYTES",
    "MAX_SAMPLE_TOKENS",
    "MIN_JOB_FEE",
    "TRAINING_PRICES",
    "ExportOptions",
    "ExportSummary",
    "FileStats",
    "LabelledPairs",
    "LoadedInput",
    "TrainingCost",
    "answer_for",
    "asks_for_reason",
    "build_example",
    "check_example",
    "check_file",
    "export_finetune",
    "load_input",
    "load_inputs",
    "read_examples",
    "training_cost",
    "training_preset",
    "training_price",
]
