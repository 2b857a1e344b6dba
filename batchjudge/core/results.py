"""The result schema: one row per input row, the contract of ``results/*.parquet``."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["RESULT_COLUMNS", "RESULT_SCHEMA", "STATUS_FAILED", "STATUS_OK", "STATUS_PARSE_ERROR"]

STATUS_OK = "ok"
STATUS_PARSE_ERROR = "parse_error"
STATUS_FAILED = "failed"

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

RESULT_COLUMNS: tuple[str, ...] = tuple(RESULT_SCHEMA.names)
