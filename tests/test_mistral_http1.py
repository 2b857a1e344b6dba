"""The lean HTTP/1.1 chat client against scripted servers over real sockets: what a real
server may send that the emulator does not (TLS, chunked replies, replies ended by closing,
``Connection: close``, idle connections closed under the client, garbage)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest

from batchjudge.adapters.mistral._http1 import Http1Pool, HttpReply
from batchjudge.core.sending import on_request_written
from batchjudge.errors import DisconnectedError, ReplyTooLargeError, TransientError, UnreachableError

Reply = Callable[[bytes], bytes | None]
"""What the server writes for one request's body (None: it closes without a word)."""

OK_BODY = orjson.dumps({"ok": True})


def _ok(extra: str = "", body: bytes = OK_BODY) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@asynccontextmanager
async def _server(
    replies: list[Reply], *, tls: ssl.SSLContext | None = None, close_after: bool = False, stall: float = 0.0
) -> AsyncIterator[tuple[str, list[int]]]:
    """Serve ``replies`` in turn (the last one again once they run out); yields the base URL
    and the number of connections accepted so far (a one-item list)."""
    accepted = [0]
    served = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                reply = replies[min(served[0], len(replies) - 1)](body)
                served[0] += 1
                await asyncio.sleep(stall)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if close_after or b"connection: close" in reply.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", accepted


def _pool(url: str, timeout: float = 5.0) -> Http1Pool:
    return Http1Pool(url, {"Authorization": "Bearer k"}, timeout=timeout, connect_timeout=2.0)


async def _send(pool: Http1Pool, cap: int | None = 1024 * 1024) -> HttpReply:
    return await pool.request("POST", "/v1/chat/completions", b'{"q": 1}', content_type="application/json",
                              what="chat completion", cap=cap)


def _run(main: Callable[[], Awaitable[object]]) -> object:
    """On uvloop where installed: the loop a run uses (its transports are not asyncio's)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())  # type: ignore[arg-type]
    return uvloop.run(main())  # type: ignore[arg-type]


def test_requests_share_one_keep_alive_connection_and_say_which_opened_it() -> None:
    async def main() -> tuple[list[bool], int, list[HttpReply]]:
        written: list[bool] = []
        on_request_written.set(written.append)
        async with _server([lambda _: _ok("X-RateLimit-Limit-Req-Minute: 60\r\n")]) as (url, accepted):
            pool = _pool(url)
            replies = [await _send(pool) for _ in range(3)]
            pool.close()
            return written, accepted[0], replies

    written, accepted, replies = _run(main)  # type: ignore[misc]
    assert written == [True, False, False] and accepted == 1
    assert all(r.status == 200 and r.body == OK_BODY for r in replies)
    assert replies[0].headers["x-ratelimit-limit-req-minute"] == "60"  # lower-cased names


def test_a_chunked_reply_and_one_ended_by_closing_are_read_whole() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ok\"\r\n6\r\n: true\r\n1\r\n}\r\n0\r\n\r\n"
    by_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + OK_BODY

    async def main() -> list[HttpReply]:
        async with _server([lambda _: chunked, lambda _: by_close]) as (url, _):
            pool = _pool(url)
            replies = [await _send(pool) for _ in range(2)]
            pool.close()
            return replies

    replies = _run(main)
    assert [orjson.loads(r.body) for r in replies] == [{"ok": True}, {"ok": True}]  # type: ignore[attr-defined]


def test_connection_close_and_idle_connections_closed_by_the_server_mean_a_new_connection() -> None:
    async def main() -> tuple[list[bool], int]:
        written: list[bool] = []
        on_request_written.set(written.append)
        async with _server([lambda _: _ok("Connection: close\r\n"), lambda _: _ok()], close_after=False) as (url, accepted):
            pool = _pool(url)
            await _send(pool)  # the server said close: not reused
            await _send(pool)
        async with _server([lambda _: _ok()], close_after=True) as (url, accepted2):
            pool2 = _pool(url)
            await _send(pool2)
            await asyncio.sleep(0.1)  # the server closed the idle connection meanwhile
            await _send(pool2)
            pool.close()
            pool2.close()
            return written, accepted[0] + accepted2[0]

    written, accepted = _run(main)  # type: ignore[misc]
    assert written == [True, True, True, True] and accepted == 4


def test_a_reply_over_the_cap_fails_unread_and_its_connection_is_not_reused() -> None:
    big = b"x" * 5000

    async def main() -> tuple[list[BaseException | HttpReply], int]:
        chunked_big = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + big + b"\r\n0\r\n\r\n"
        async with _server([lambda _: _ok(body=big), lambda _: chunked_big, lambda _: _ok()]) as (url, accepted):
            pool = _pool(url)
            outcomes: list[BaseException | HttpReply] = []
            for _ in range(3):
                try:
                    outcomes.append(await _send(pool, cap=1000))
                except ReplyTooLargeError as exc:
                    outcomes.append(exc)
            pool.close()
            return outcomes, accepted[0]

    outcomes, accepted = _run(main)  # type: ignore[misc]
    assert "reply of 5,000 bytes is over the 1,000-byte cap" in str(outcomes[0])
    assert "reply over the 1,000-byte cap" in str(outcomes[1])
    assert isinstance(outcomes[2], HttpReply) and accepted == 3


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (lambda _: None, DisconnectedError, "connection lost before any reply"),
        (lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\": ", TransientError, "connection error: the reply broke off"),
        (lambda _: b"SMTP ready\r\n\r\n", TransientError, "malformed HTTP reply"),
    ],
)
def test_a_server_that_hangs_up_or_speaks_garbage_is_the_packages_error(
    reply: Reply, error: type[Exception], words: str
) -> None:
    async def main() -> BaseException:
        async with _server([reply], close_after=True) as (url, _):
            pool = _pool(url)
            with pytest.raises(error) as info:
                await _send(pool)
            pool.close()
            return info.value

    exc = _run(main)
    assert type(exc) is error and words in str(exc)


def test_no_reply_within_the_timeout_is_a_timeout_and_closes_the_connection() -> None:
    async def main() -> tuple[BaseException, int]:
        async with _server([lambda _: _ok()], stall=1.0) as (url, accepted):
            pool = _pool(url, timeout=0.2)
            with pytest.raises(TransientError) as info:
                await _send(pool)
            with pytest.raises(TransientError):
                await _send(pool)  # not on the first connection: its reply could still come
            pool.close()
            return info.value, accepted[0]

    exc, accepted = _run(main)  # type: ignore[misc]
    assert "no reply within 0.2 s (timeout)" in str(exc) and accepted == 2


def test_tls_is_verified_against_the_systems_trust_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)

    async def main() -> HttpReply:
        async with _server([lambda _: _ok()], tls=server_context) as (url, _):
            pool = _pool(url)
            try:
                return await _send(pool)
            finally:
                pool.close()

    with pytest.raises(UnreachableError, match=r"cannot connect to https://127\.0\.0\.1:\d+ \(.*TLS: .*certificate"):
        _run(main)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # read when the client is made
    reply = _run(main)
    assert reply.status == 200 and reply.body == OK_BODY  # type: ignore[attr-defined]


def test_a_cancelled_request_closes_its_connection() -> None:
    async def main() -> int:
        async with _server([lambda _: _ok()], stall=0.5) as (url, accepted):
            pool = _pool(url)
            task = asyncio.create_task(_send(pool))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await _send(pool)  # a new connection: the cancelled one's reply must not be read as this one's
            pool.close()
            return accepted[0]

    assert _run(main) == 2
