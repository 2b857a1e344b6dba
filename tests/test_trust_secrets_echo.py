"""A server that echoes the credential in every encoding leaves it nowhere.

The hostile server of this module writes the key it was sent in every way of
:func:`secret_forms.echoes` (as is, ``Bearer <key>`` and its header line, base64 of them at
every byte offset in both alphabets, percent-encoded, JSON-escaped, JSON in JSON) into the
``model`` field and the verdict's reason of 200 replies, into a reply that is no verdict, and
into 400, 422, 500 and 401 bodies. Over the three transports (``mistral`` over ``http`` and
``sdk``, ``openai``) the key is then in none of: the result Parquet (every column),
``run.json``, the local trace, stdout, stderr, and the report in every format (the CLI run in
this process; in a subprocess too under ``-m slow``). Whether the key is there is judged by
:func:`secret_forms.leaks`, which decodes rather than trusting the scrubber's own patterns.

A run directory written by an older version holds the key raw; every report format scrubs what
it shows of it. Which columns are scrubbed is a rule (text a server or user wrote), and a key
too short to scrub is refused for a server that is not on this machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from aiohttp import web
from typer.testing import CliRunner

from batchjudge import ConfigError, JudgeReply, MockProvider, RunConfig, run
from batchjudge.cli import app
from batchjudge.core.results import SERVER_TEXT_COLUMNS, RowResult, result_columns
from batchjudge.core.scrub import REDACTED, Scrubber
from emulator_fixtures import batchjudge_cli
from hostile_server import BODY, HostileServer, chat_reply
from secret_forms import echoes, leaks, written_text

KEY = "sk-echo/7f3a+9c2e81d4b6055e1a_Q"
"""With ``/`` and ``+``, so its percent- and JSON-escaped forms differ from it."""
REJECTED_MODEL = "reject-me"
"""A request for this model is answered 401, the key echoed."""
TRANSPORTS = {
    "http": ("--provider", "mistral", "--transport", "http"),
    "sdk": ("--provider", "mistral", "--transport", "sdk"),
    "openai": ("--provider", "openai", "--model", "judge"),
}
ENV = {"MISTRAL_API_KEY": KEY, "OPENAI_API_KEY": KEY}


def _dump(request: web.Request) -> str:
    """Every echo of the key the request carried, and its headers as a dict."""
    key = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return " ".join([*echoes(key).values(), repr(dict(request.headers))])


def _echo_everything(request: web.Request, n: int) -> web.StreamResponse:
    """Row i (from the prompt's "Report i:") always gets the same one of five answers, so a
    retried row meets its answer again; a request for :data:`REJECTED_MODEL` gets a 401."""
    dump = _dump(request)
    if json.loads(request[BODY]).get("model") == REJECTED_MODEL:
        return web.json_response({"message": f"invalid key, you sent {dump}"}, status=401)
    kind = int(re.search(r"Report (\d+):", request[BODY])[1]) % 5  # type: ignore[index]
    if kind == 0:  # a verdict whose model and reason echo the key
        reply = json.loads(chat_reply(json.dumps({"consistency": 1, "reason": f"you sent {dump}"})).text or "")
        return web.json_response({**reply, "model": dump})
    if kind == 1:  # no verdict at all: the reply is kept as it came
        return chat_reply(f"I will not judge this; you sent {dump}")
    if kind == 2:
        return web.json_response({"message": f"bad request {dump}"}, status=400)
    if kind == 3:
        return web.json_response({"detail": [{"loc": ["header"], "msg": dump, "type": "value_error"}]}, status=422)
    return web.Response(text=f"upstream failed\n{dump}", status=500, content_type="text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer(_echo_everything) as hostile:
        yield hostile


@dataclass
class Shown:
    """What one report command showed: its output and the files it wrote."""

    output: str
    files: str


def _report(args: list[str], files: list[Path], key: str) -> Shown:
    """``batchjudge ARGS`` in this process with ``key`` in the environment, as a user runs it."""
    result = CliRunner().invoke(app, args, env={"MISTRAL_API_KEY": key}, terminal_width=400)
    assert result.exit_code == 0, result.output
    return Shown(result.stdout + result.stderr, "\n".join(p.read_text(encoding="utf-8") for p in files))


def _every_report_format(run_dir: Path, tmp_path: Path, key: str) -> list[Shown]:
    html, rows = tmp_path / "report.html", tmp_path / "rows.jsonl"
    return [
        _report(["report", str(run_dir), "--resamples", "100"], [], key),
        _report(["report", str(run_dir), "--json", "--resamples", "100", "--html", str(html), "--rows", str(rows)],
                [html, rows], key),
        _report(["status", str(run_dir), "--json"], [], key),
    ]  # fmt: skip


@dataclass
class Ran:
    """What one ``batchjudge`` command did."""

    code: int
    stdout: str
    stderr: str


def _in_process(*args: str) -> Ran:
    result = CliRunner().invoke(app, list(args), env=ENV, terminal_width=400)
    return Ran(result.exit_code, result.stdout, result.stderr)


def _in_a_subprocess(*args: str) -> Ran:
    proc = batchjudge_cli(*args, env=ENV)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("cli", [
    pytest.param(_in_process, id="in-process"),
    pytest.param(_in_a_subprocess, id="subprocess", marks=pytest.mark.slow),  # the same, 2 s a run slower
])  # fmt: skip
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_a_server_echoing_the_key_in_every_encoding_leaves_it_nowhere(
    server: HostileServer, write_pairs, tmp_path: Path, transport: str, cli: Callable[..., Ran]
) -> None:
    data = write_pairs(5)
    common = ("--base-url", server.url, "--max-retries", "1", "--concurrency", "2", "--quiet",
              "--trace", f"local:{tmp_path / 'trace'}", *TRANSPORTS[transport])  # fmt: skip
    judged = cli("run", str(data), "--out", str(tmp_path / "run"), *common)
    assert judged.code == 0, judged.stderr
    rejected = cli("run", str(data), "--out", str(tmp_path / "rejected"), *common, "--model", REJECTED_MODEL)
    assert rejected.code == 2 and "AuthError" in rejected.stderr, rejected.stderr

    results = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet")
    assert sorted(results["status"]) == ["failed"] * 3 + ["ok", "parse_error"]  # every echo came back
    echoed = results.filter(pl.col("status") == "ok").row(0, named=True)  # the 200 that echoed in model
    assert REDACTED in echoed["model"] and REDACTED in echoed["reason"]
    for shown in [judged.stdout, judged.stderr, rejected.stdout, rejected.stderr,
                  written_text(tmp_path / "run"), written_text(tmp_path / "rejected"),
                  written_text(tmp_path / "trace")]:  # fmt: skip
        assert not leaks(shown, KEY), leaks(shown, KEY)
    for report in _every_report_format(tmp_path / "run", tmp_path, KEY):
        assert not leaks(report.output + report.files, KEY)


OLD_KEY = "sk-older/run+5b1e9d3c7a2f8e6d4c0b_Z"
"""Used by no other test, so this process's scrubber does not know it until a report runs."""


def _older_run(out: Path, data: Path, verdict: int) -> None:
    """A run directory as an older version wrote it: the key raw in ``model`` and ``reason``."""

    def reply(request: object) -> JudgeReply:
        dump = " ".join(echoes(OLD_KEY).values())
        return JudgeReply(json.dumps({"consistency": verdict, "reason": dump}), 10, 5, model=f"{OLD_KEY} {dump}")

    run(RunConfig(inputs=[data], out=out, check_labels=False), provider=MockProvider(reply))


def test_every_report_format_scrubs_a_run_directory_that_holds_the_key(write_pairs, tmp_path: Path) -> None:
    data = write_pairs(4)
    _older_run(tmp_path / "a", data, 1)
    _older_run(tmp_path / "b", data, 0)
    assert leaks(written_text(tmp_path / "a"), OLD_KEY)  # the key really is on disk, raw
    diffs, html = tmp_path / "diffs.csv", tmp_path / "compare.html"
    shown = [
        *_every_report_format(tmp_path / "a", tmp_path, OLD_KEY),
        _report(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--diff", "--resamples", "100"], [], OLD_KEY),
        _report(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json", "--resamples", "100",
                 "--html", str(html), "--diff-out", str(diffs)], [html, diffs], OLD_KEY),
    ]  # fmt: skip
    for report in shown:
        assert not leaks(report.output + report.files, OLD_KEY), report.output[:2000]


def test_every_text_column_a_server_or_user_writes_is_scrubbed_by_rule() -> None:
    from batchjudge.core.results import server_text_columns

    assert set(SERVER_TEXT_COLUMNS) == {"model", "reason", "raw_response", "error"}

    @dataclass(slots=True)
    class Extended(RowResult):
        note: str | None = None
        engine_count: int = 0

    assert server_text_columns(Extended) == (*SERVER_TEXT_COLUMNS, "note")  # a text column added later
    row = RowResult("r1", "ok", model=f"Bearer {KEY}", reason=KEY, raw_response=KEY, error=None)
    columns = result_columns([row], scrub=Scrubber([KEY]).text)
    assert columns["model"] == [f"Bearer {REDACTED}"] and columns["reason"] == [REDACTED]
    assert columns["row_id"] == ["r1"] and columns["status"] == ["ok"]


@pytest.mark.parametrize(("provider", "variable"), [("mistral", "MISTRAL_API_KEY"), ("openai", "OPENAI_API_KEY")])
def test_a_key_too_short_to_scrub_is_refused_for_a_server_elsewhere(
    write_pairs, tmp_path: Path, provider: str, variable: str
) -> None:
    refused = CliRunner().invoke(app, [
        "run", str(write_pairs(2)), "--out", str(tmp_path / "run"), "--provider", provider, "--model", "judge",
        "--base-url", "https://judge.example.invalid",
    ], env={variable: "k3y-ab7"}, terminal_width=400)  # fmt: skip
    assert refused.exit_code == 2, refused.output
    line = refused.stderr.strip()
    assert "\n" not in line and variable in line and "shorter than 8 characters" in line
    assert "k3y-ab7" not in refused.stdout + refused.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match=r"^api_key: the API key is shorter than 8"):
        run(RunConfig(inputs=[write_pairs(2)], out=tmp_path / "lib", provider=provider, model="judge",
                      api_key="short", base_url="https://judge.example.invalid"))  # fmt: skip
    assert not (tmp_path / "lib").exists()


def test_a_short_key_is_allowed_for_a_server_on_this_machine(write_pairs, tmp_path: Path) -> None:
    with HostileServer() as local:
        done = run(RunConfig(inputs=[write_pairs(2)], out=tmp_path / "run", provider="mistral", api_key="short",
                             base_url=local.url, check_labels=False))  # fmt: skip
    assert done.complete and local.requests == 2
