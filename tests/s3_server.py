"""An S3-compatible server over real HTTP for the tests: moto's server mode on 127.0.0.1.

Moto honours ``If-None-Match: *`` and ``If-Match`` on PUT (refusing with 412
PreconditionFailed), which the run directory's commits rely on. A test can hook the requests
(:attr:`S3Server.hook`): called before and after moto handles each one, it can kill a driver
in the middle of a commit. Skipped when moto or boto3 is not installed (``pip install -e
'.[test]'`` has both).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

ACCESS_KEY = "AKIAQ7TESTKEYID4242X"
SECRET_KEY = "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"
"""Credentials the tests give the store (moto accepts any): they must appear nowhere."""

Hook = Callable[[str, str, str], bool]
"""``hook(method, path, phase)`` with ``phase`` ``"before"`` or ``"after"`` moto handled it;
True before refuses the request (answered 403, never stored)."""


@dataclass
class S3Server:
    endpoint: str
    client: Any
    bucket: str
    hook: Hook | None = None
    seen: list[tuple[str, str]] = field(default_factory=list)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def upload_folder(self, folder: Any, prefix: str) -> None:
        for path in sorted(folder.iterdir()):
            self.client.upload_file(str(path), self.bucket, f"{prefix}{path.name}")


def _hooked_server(state: dict[str, S3Server]) -> Any:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class Hooked(ThreadedMotoServer):  # type: ignore[misc]
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)

            def hooked(environ: dict[str, Any], start_response: Any) -> Any:
                server = state.get("server")
                method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
                if server is not None and server.hook is not None and server.hook(method, path, "before"):
                    start_response("403 Forbidden", [("Content-Length", "0")])
                    return [b""]  # the hook refused the request (not retried): it never reaches the store
                reply = list(app(environ, start_response))
                if server is not None and server.hook is not None:
                    server.hook(method, path, "after")
                return reply

            self._server = make_server(self._ip_address, self._port, hooked, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return Hooked(ip_address="127.0.0.1", port=0, verbose=False)


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[tuple[str, dict[str, S3Server]]]:
    """One moto server for the session (stopping one takes half a second)."""
    pytest.importorskip("moto.server")
    pytest.importorskip("boto3")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    state: dict[str, S3Server] = {}
    server = _hooked_server(state)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}", state
    finally:
        server.stop()


@pytest.fixture
def s3(_moto_server: tuple[str, dict[str, S3Server]], monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A fresh bucket on the moto server, its endpoint and credentials in the environment."""
    import boto3

    endpoint, state = _moto_server
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = f"bj-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    state["server"] = S3Server(endpoint, client, bucket)
    try:
        yield state["server"]
    finally:
        state["server"].hook = None
