"""Errors about the request, not the row, stop the run early (issue 29, item 1).

A misspelled model is refused by the server for every row alike: the run stops after the
first few rows (exit 2, the server's reason on screen), nothing is marked failed, and the
rows stay pending for the corrected command. The rule itself
(:class:`~batchjudge.engine.request_errors.RequestErrorWatch`) is driven with plain rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from emulator_fixtures import TEST_KEY, StartEmulator, emulator  # noqa: F401  (fixture)
from typer.testing import CliRunner, Result

from batchjudge.cli import app

from batchjudge.core.results import STATUS_FAILED, STATUS_OK, FinishedRow, RowResult
from batchjudge.engine.request_errors import FIRST_ROWS, RequestErrorWatch, normalised_error
from batchjudge.errors import RequestRejectedError

INVALID_MODEL = "BadRequestError[400]: HTTP 400: Invalid model: mistral-smal-latest"


def _row(key: str, error: str | None) -> FinishedRow:
    status = STATUS_OK if error is None else STATUS_FAILED
    return FinishedRow(RowResult(key, status, error=error, model="m"), "p", "h", ())


def _cli(*args: str) -> Result:
    """The CLI in this process (the emulator over real HTTP): a subprocess's start costs seconds."""
    return CliRunner().invoke(app, list(args), env={"MISTRAL_API_KEY": TEST_KEY}, terminal_width=400)


def _run(server_url: str, data: Path, out: Path, *extra: str) -> Result:
    return _cli("run", str(data), "--out", str(out), "--provider", "mistral", "--base-url", server_url, "--quiet", *extra)


def _failed_rows(out: Path) -> int:
    parts = sorted((out / "results").glob("*.parquet"))
    return pl.concat([pl.read_parquet(p) for p in parts]).filter(pl.col("status") == "failed").height if parts else 0


def test_a_misspelled_model_stops_the_run_after_a_few_calls_with_the_servers_reason_and_nothing_failed(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator()
    data = write_pairs(2000)
    done = _run(server.url, data, tmp_path / "run", "--model", "mistral-smal-latest", "--concurrency", "64")
    assert done.exit_code == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Invalid model: mistral-smal-latest" in errors[0]
    assert server.stats()["chat_completions"] < 2 * FIRST_ROWS  # however many requests may be in flight
    assert _failed_rows(tmp_path / "run") == 0  # the rows stay pending for the corrected command
    status = _cli("status", str(tmp_path / "run"))
    assert "stopped before the end" in status.stdout and "--retry-failed" not in status.stdout


def test_the_same_4xx_on_the_first_rows_before_any_answer_stops_with_nothing_written() -> None:
    watch = RequestErrorWatch()
    for i in range(FIRST_ROWS - 1):
        assert watch.finished(_row(f"r{i}", INVALID_MODEL)) == []
    with pytest.raises(RequestRejectedError, match="Invalid model: mistral-smal-latest") as raised:
        watch.finished(_row("last", INVALID_MODEL))
    assert raised.value.status == 400


def test_an_answer_among_the_first_rows_disarms_the_rule_and_writes_the_held_failures() -> None:
    watch = RequestErrorWatch()
    held = [watch.finished(_row(f"r{i}", INVALID_MODEL)) for i in range(3)]
    assert held == [[], [], []]
    written = watch.finished(_row("answered", None))
    assert [f.result.row_id for f in written] == ["r0", "r1", "r2", "answered"]
    for i in range(3 * FIRST_ROWS):  # from now on every failure is the row's own
        assert len(watch.finished(_row(f"later{i}", INVALID_MODEL))) == 1


@pytest.mark.parametrize("second", [
    "BadRequestError[400]: HTTP 400: prompt has 9001 tokens, more than 8192",  # a row's own figures
    "TransientError[503]: HTTP 503: unavailable",                              # the server, not the request
    "RateLimitError[429]: HTTP 429: slow down",
    "ValueError: the local judge failed",
])
def test_a_different_failure_among_the_first_rows_means_the_rows_fail_on_their_own(second: str) -> None:
    watch = RequestErrorWatch()
    watch.finished(_row("a", "BadRequestError[400]: HTTP 400: prompt has 9000 tokens, more than 8192"))
    assert len(watch.finished(_row("b", second))) == 2


def test_fewer_rows_than_the_rule_needs_are_written_as_failed_at_the_end() -> None:
    watch = RequestErrorWatch()
    for i in range(FIRST_ROWS - 1):
        watch.finished(_row(f"r{i}", INVALID_MODEL))
    assert len(watch.release()) == FIRST_ROWS - 1


def test_request_ids_and_spacing_do_not_make_one_server_message_two() -> None:
    one = normalised_error("BadRequestError[422]: HTTP 422: bad field  (request 0123456789abcdef0123)")
    two = normalised_error("BadRequestError[422]: HTTP 422: Bad field (request fedcba98765432100123)")
    assert one == two and one is not None and one[0] == 422
    assert normalised_error("RateLimitError[429]: too many") is None


def test_the_summary_and_the_report_show_the_most_frequent_errors_of_failed_rows(
    emulator: StartEmulator, write_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    server = emulator(faults="400:0.4", seed=3)
    out = tmp_path / "run"
    done = _run(server.url, write_pairs(30), out, "--model", "open-mistral-7b", "--concurrency", "1")
    assert done.exit_code == 0, done.stderr
    failed = _failed_rows(out)
    assert failed > 0
    assert f"failed {failed:,}: BadRequestError[400]" in done.stderr
    report = _cli("report", str(out), "--json")
    top = json.loads(report.stdout)["top_errors"]
    assert top[0]["rows"] == failed and top[0]["error"].startswith("BadRequestError[400]")
    shown = _cli("report", str(out))
    assert "Most frequent errors" in shown.stdout
