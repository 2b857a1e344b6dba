"""Property-based: whatever bytes, unicode, nulls or huge strings arrive — as an input file,
as row texts, as a server's reply or error body — nothing crashes the run. An input file is
read or refused with one InputError; a reply becomes a verdict, a parse error or a
TransientError; an error body becomes a scrubbed ProviderError; a row with any texts gets
exactly one result."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchjudge import JudgeReply, MockProvider, RunConfig, run
from batchjudge.adapters.mistral import error_for_status, reply_from_payload
from batchjudge.adapters.parsing import parse_verdict
from batchjudge.core.scrub import remember_secret
from batchjudge.engine.source import open_source
from batchjudge.errors import InputError, ProviderError, TransientError

SECRET = "sk-property-secret-4d2c9e7a1b"
remember_secret(SECRET)

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)  # Arrow strings are UTF-8
HUGE = st.integers(100_000, 400_000).map(lambda n: "long sentence number 7. " * (n // 24))
ROW_TEXT = st.one_of(st.none(), st.just(""), st.just("\x00\x00"), TEXT, HUGE)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.binary(max_size=2000), st.sampled_from([".parquet", ".jsonl", ".csv"]))
def test_an_input_file_of_random_bytes_is_read_or_refused_with_one_input_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("input") / f"random{suffix}"
    path.write_bytes(content)
    try:
        source = open_source([path])
        for batch in source.batches(64):
            assert all(isinstance(row.row_id, str) for row in batch)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc).strip()


@FAST
@given(TEXT | st.binary(max_size=500).map(lambda b: b.decode("latin-1")) | JSON.map(json.dumps))
def test_any_reply_text_parses_to_a_verdict_or_a_parse_error(text: str) -> None:
    parsed = parse_verdict(text)
    assert parsed.status in ("ok", "parse_error")
    assert (parsed.verdict in (0, 1)) == (parsed.status == "ok")


@FAST
@given(JSON)
def test_any_reply_payload_is_a_reply_or_a_transient_error(payload: object) -> None:
    try:
        reply = reply_from_payload(payload, {})
    except TransientError as exc:
        assert str(exc).startswith("malformed reply")
    else:
        assert isinstance(reply.text, str)


@FAST
@given(
    st.integers(300, 599),
    st.binary(max_size=3000) | TEXT.map(str.encode),
    st.sampled_from(["Authorization: Bearer {k}", '"api-key": "{k}"', "{k}", "key={k}&x=1"]),
)
def test_any_error_body_is_a_provider_error_that_never_carries_the_key(
    status: int, body: bytes, echo: str
) -> None:
    hostile = body[: len(body) // 2] + echo.format(k=SECRET).encode() + body[len(body) // 2:]
    error = error_for_status(status, {"retry-after": "12"}, hostile)
    assert isinstance(error, ProviderError) and SECRET not in str(error)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(ROW_TEXT, ROW_TEXT), min_size=1, max_size=6))
def test_rows_with_any_texts_each_get_exactly_one_result(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str | None, str | None]]
) -> None:
    folder = tmp_path_factory.mktemp("rows")
    table = pa.table({"premise": pa.array([p for p, _ in rows], pa.string()),
                      "hypothesis": pa.array([h for _, h in rows], pa.string())})
    pq.write_table(table, folder / "rows.parquet")
    answers = iter(["{}", "not json at all", '{"consistency": 1}', "\x00", "yes", '{"consistency": "maybe"}'] * 2)
    provider = MockProvider(lambda request: JudgeReply(next(answers)))
    result = run(RunConfig(inputs=[folder / "rows.parquet"], out=folder / "run", check_labels=False),
                 provider=provider)
    assert result.complete and result.counts["done"] == len(rows)
    written = pq.read_table(folder / "run" / "results").column("row_id").to_pylist()
    assert len(written) == len(set(written)) == len(rows)
