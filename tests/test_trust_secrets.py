"""No API key, credential header or URL password in anything that leaves the process.

A hostile server echoes the request's headers (``Authorization: Bearer <key>`` included) into
error bodies of every shape (400, 401, 422, 500, plain text) and into a successful reply; the
CLI runs against it over real HTTP with both transports, with tracing on. The sentinel key
must appear in no results file, ``run.json``, trace, log line or stderr — while the server
really received it and really echoed it (the results show ``[REDACTED]`` where it was).
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
from pathlib import Path

import polars as pl
import pytest
from aiohttp import web

from batchjudge import ConfigError, RunConfig, run
from batchjudge.core.scrub import REDACTED, scrubbed_logger
from emulator_fixtures import batchjudge_cli, emulator  # noqa: F401 - a fixture
from hostile_server import BODY, HostileServer, chat_reply, echo_headers
from secret_forms import written_text

SENTINEL = "sk-sentinel-7f3a9c2e81d4b6055e1a"
TRANSPORTS = ("http", "sdk")


def _mixed_echoes(request: web.Request, n: int) -> web.StreamResponse | None:
    """Row i (read from the prompt's "Report i:") always gets the same one of five hostile
    answers, or (every sixth row) a normal one, so a retried row meets its answer again."""
    kind = int(re.search(r"Report (\d+):", request[BODY])[1]) % 6  # type: ignore[index]
    if kind == 0:
        return echo_headers(400, "json-message")(request, n)
    if kind == 1:
        return echo_headers(422, "detail")(request, n)
    if kind == 2:
        return echo_headers(500, "json-raw")(request, n)
    if kind == 3:
        return echo_headers(400, "text")(request, n)
    if kind == 4:  # a 200 whose verdict's reason repeats the headers
        return chat_reply(json.dumps({"consistency": 1, "reason": f"you sent {dict(request.headers)}"}))
    return None


def _run(server: HostileServer, data: Path, out: Path, trace: Path, transport: str,
         *extra: str) -> tuple[int, str]:
    proc = batchjudge_cli(
        "run", str(data), "--out", str(out), "--provider", "mistral", "--base-url", server.url,
        "--transport", transport, "--max-retries", "1", "--concurrency", "2",
        "--trace", f"local:{trace}", "--quiet", *extra,
        env={"MISTRAL_API_KEY": SENTINEL}, timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_echoing_the_key_into_errors_and_replies_leaks_it_nowhere(
    write_pairs, tmp_path: Path, transport: str
) -> None:
    seen: list[str] = []

    def script(request: web.Request, n: int) -> web.StreamResponse | None:
        seen.append(request.headers.get("Authorization", ""))
        return _mixed_echoes(request, n)

    data = write_pairs(12)
    with HostileServer(script) as server:
        code, output = _run(server, data, tmp_path / "run", tmp_path / "trace", transport)
    assert code == 0, output
    assert seen and all(SENTINEL in h for h in seen)  # the key went out, and came back echoed
    written = written_text(tmp_path / "run") + written_text(tmp_path / "trace")
    assert SENTINEL not in written + output
    results = pl.read_parquet(tmp_path / "run" / "results" / "*.parquet")
    errors = " ".join(results["error"].drop_nulls().to_list())
    assert REDACTED in errors and REDACTED in " ".join(results["reason"].drop_nulls().to_list())
    assert {"BadRequestError[400]", "BadRequestError[422]", "TransientError[500]"} <= {
        e.split(":")[0] for e in results["error"].drop_nulls().to_list()
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_401_echoing_the_key_stops_the_run_with_a_clean_error_line(
    write_pairs, tmp_path: Path, transport: str
) -> None:
    data = write_pairs(6)
    with HostileServer(echo_headers(401, "json-message")) as server:
        code, output = _run(server, data, tmp_path / "run", tmp_path / "trace", transport)
    assert code == 2, output
    assert "error: AuthError: HTTP 401" in output and "Traceback" not in output
    assert SENTINEL not in output + written_text(tmp_path / "run") + written_text(tmp_path / "trace")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_emulators_echo_fault_leaks_the_key_nowhere(write_pairs, tmp_path: Path, emulator, transport: str) -> None:  # noqa: F811
    """The emulator's own hostile mode: errors (400, 401, 422, 500, plain-text 400 in turn)
    whose bodies repeat the request's headers. The run ends at the first 401 (exit 2) or
    completes; either way the key is nowhere."""
    server = emulator(faults="echo:0.7", seed=5)
    proc = batchjudge_cli(
        "run", str(write_pairs(10)), "--out", str(tmp_path / "run"), "--provider", "mistral",
        "--base-url", server.url, "--transport", transport, "--max-retries", "1", "--concurrency", "1",
        "--trace", f"local:{tmp_path / 'trace'}", "--quiet", env={"MISTRAL_API_KEY": SENTINEL},
    )
    assert proc.returncode in (0, 2), proc.stderr
    assert server.stats()["faults"].get("echo", 0) >= 2
    written = written_text(tmp_path / "run") + written_text(tmp_path / "trace")
    assert SENTINEL not in proc.stdout + proc.stderr + written


def test_a_base_url_with_a_password_is_refused_without_showing_it(write_pairs, tmp_path: Path) -> None:
    proc = batchjudge_cli(
        "run", str(write_pairs(4)), "--out", str(tmp_path / "run"), "--provider", "mistral",
        "--base-url", "https://user:hunter2-password@example.invalid", env={"MISTRAL_API_KEY": SENTINEL},
    )
    assert proc.returncode == 2
    assert "carries a user or password" in proc.stderr and "hunter2" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run").exists()  # refused before anything is written


def _this_machines_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_plain_http_to_another_machine_needs_allow_insecure_http(write_pairs, tmp_path: Path) -> None:
    address = _this_machines_address()
    if address is None:
        pytest.skip("this machine has no address other than loopback")
    data = write_pairs(4)
    with HostileServer(host="0.0.0.0") as server:
        url = f"http://{address}:{server.port}"
        options = dict(inputs=[data], provider="mistral", base_url=url, api_key=SENTINEL, check_labels=False)
        with pytest.raises(ConfigError, match=r"plain http:// to another machine.*--allow-insecure-http"):
            run(RunConfig(out=tmp_path / "a", **options))  # type: ignore[arg-type]
        allowed = run(RunConfig(out=tmp_path / "b", allow_insecure_http=True, **options))  # type: ignore[arg-type]
    assert not (tmp_path / "a").exists()  # refused before anything was written
    assert server.requests == 4 and allowed.complete


def test_library_log_records_are_scrubbed_before_any_handler_sees_them(monkeypatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_API_KEY", SENTINEL)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = scrubbed_logger("batchjudge.test_trust")
    logger.addHandler(handler)
    try:
        logger.warning("server said %s", f"Authorization: Bearer {SENTINEL}")
        try:
            raise RuntimeError(f"boom with {SENTINEL}")
        except RuntimeError:
            logger.exception("failed for https://me:%s@host/x", "pw-secret-123")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert SENTINEL not in text and "pw-secret-123" not in text
    assert "RuntimeError: boom with [REDACTED]" in text and "https://[REDACTED]@host/x" in text
