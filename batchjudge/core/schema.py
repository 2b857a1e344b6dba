"""The Parquet schema of ``results/*.parquet``: one row per input row.

Its columns are :class:`~batchjudge.core.results.RowResult`'s fields, in the same order (a
test pins the two together); this module is separate only because it needs pyarrow, which
the rest of the bottom layer does not.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["RESULT_SCHEMA"]

RESULT_SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("verdict", pa.int8()),
        pa.field("score", pa.float64()),
        pa.field("reason", pa.string()),
        pa.field("raw_response", pa.string()),
        pa.field("error", pa.string()),
        pa.field("attempts", pa.int32()),
        pa.field("latency_ms", pa.float64()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("model", pa.string()),
        pa.field("target", pa.int8()),
        pa.field("truncated_tokens", pa.int64()),
    ]
)
"""``target`` is null when the input is unlabelled; ``truncated_tokens`` counts document
tokens cut to fit the model's context (0 when nothing was cut)."""
