"""The native path's own HTTP/1.1 transport (``transport.py``) on the wire: keep-alive reuse,
the pool's bound, stale connections, framings, bounds, cancellation and bad bytes; and
what the provider makes of its errors."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from llm_router_server.errors import ProviderConnectionError, ProviderResponseError
from llm_router_server.providers import transport as transport_module
from llm_router_server.providers.http11 import (
    MAX_HEAD,
    BadResponseError,
    BodyTooLargeError,
    ConnectError,
    ConnectionBrokenError,
)
from llm_router_server.providers.http_provider import AiohttpProvider, response_limit
from llm_router_server.providers.transport import Transport
from tests.support.net import free_port
from tests.support.providers import question, spec
from tests.support.raw_http import CLOSE, HANG, RawServer, Reply, answer, chunked

HEADERS = {"Content-Type": "application/json", "traceparent": "00-abc-def-01"}


def transport(limit: int = 8, max_body: int = 1000) -> Transport:
    return Transport(limit=limit, max_body=max_body, user_agent="test-agent")


async def post(t: Transport, url: str, body: bytes = b'{"q": 1}') -> bytes:
    target = t.target(url)
    assert target is not None
    response = await t.post(target, HEADERS, body)
    assert response.status == 200
    return response.body


def always(reply: Reply) -> RawServer:
    return RawServer(lambda _c, _i: reply)


async def test_a_connection_is_reused_and_sends_the_headers() -> None:
    async with always(answer()) as server:
        t = transport()
        for _ in range(3):
            assert await post(t, server.url) == b'{"ok": true}'
        await t.aclose()
        await server.wait_closed(1)
    assert server.connections == 1 and len(server.requests) == 3
    head = server.requests[0].head.decode()
    assert head.startswith("POST /api/chat HTTP/1.1\r\n")
    assert "\r\nUser-Agent: test-agent\r\n" in head
    assert "\r\ntraceparent: 00-abc-def-01\r\n" in head
    assert "\r\nContent-Length: 8\r\n" in head and server.requests[0].body == b'{"q": 1}'


def test_it_runs_on_uvloop_as_the_server_does() -> None:
    async def calls() -> int:
        reply = chunked(b'{"a":', b" 1}")
        async with always(reply) as server:
            t = transport()
            for _ in range(3):
                assert await post(t, server.url) == b'{"a": 1}'
            await t.aclose()
        return server.connections

    assert uvloop.run(calls()) == 1


async def test_the_pool_opens_at_most_its_limit() -> None:
    async with always([b"", answer()]) as server:  # a pause before each answer
        t = transport(limit=2)
        await asyncio.gather(*(post(t, server.url) for _ in range(6)))
        await t.aclose()
    assert server.connections == 2 and len(server.requests) == 6


async def test_a_stale_keep_alive_connection_is_retried_once_on_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "STALE_SECONDS", 0.05)
    # The server drops the second request on the first connection unanswered.
    async with RawServer(lambda c, i: CLOSE if (c, i) == (0, 1) else answer()) as server:
        t = transport()
        await post(t, server.url)
        await asyncio.sleep(0.1)  # idle long enough to have met a server's idle timeout
        assert await post(t, server.url) == b'{"ok": true}'
        await t.aclose()
    assert [(r.connection, r.index) for r in server.requests] == [(0, 0), (0, 1), (1, 0)]


async def test_a_connection_dropped_right_after_its_last_answer_is_not_retried() -> None:
    # Not idle for STALE_SECONDS: the server had the request and dropped it (a fault).
    async with RawServer(lambda c, i: CLOSE if (c, i) == (0, 1) else answer()) as server:
        t = transport()
        await post(t, server.url)
        with pytest.raises(ConnectionBrokenError, match="Server disconnected"):
            await post(t, server.url)
        await t.aclose()
    assert [(r.connection, r.index) for r in server.requests] == [(0, 0), (0, 1)]


async def test_an_idle_connection_the_server_closed_is_not_used() -> None:
    async with RawServer(lambda c, i: [answer(), CLOSE]) as server:
        t = transport()
        await post(t, server.url)
        await server.wait_closed(0)
        await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
        await post(t, server.url)
        await t.aclose()
    assert [(r.connection, r.index) for r in server.requests] == [(0, 0), (1, 0)]


async def test_a_connection_idle_too_long_is_closed_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "IDLE_SECONDS", 0.05)
    async with always(answer()) as server:
        t = transport()
        await post(t, server.url)
        await asyncio.sleep(0.1)
        await post(t, server.url)
        await server.wait_closed(1)
        await t.aclose()
    assert [(r.connection, r.index) for r in server.requests] == [(0, 0), (1, 0)]


async def test_a_new_connection_dropped_unanswered_is_not_retried() -> None:
    async with always(CLOSE) as server:
        t = transport()
        with pytest.raises(ConnectionBrokenError, match="Server disconnected"):
            await post(t, server.url)
        await t.aclose()
    assert len(server.requests) == 1


async def test_a_reused_connection_closed_mid_answer_is_not_retried() -> None:
    half = answer()[:-4]
    async with RawServer(lambda c, i: answer() if i == 0 else [half, CLOSE]) as server:
        t = transport()
        await post(t, server.url)
        with pytest.raises(ConnectionBrokenError, match="not completed"):
            await post(t, server.url)
        await t.aclose()
    assert len(server.requests) == 2


async def test_chunked_answers_in_pieces_keep_the_connection() -> None:
    reply = chunked(b'{"a":', b' "long"', b"}", trailer=b"X-Trailer: 1\r\n")
    pieces = [reply[i : i + 7] for i in range(0, len(reply), 7)]
    async with always(pieces) as server:
        t = transport()
        assert await post(t, server.url) == b'{"a": "long"}'
        assert await post(t, server.url) == b'{"a": "long"}'
        await t.aclose()
    assert server.connections == 1


async def test_an_answer_without_length_is_read_to_the_end() -> None:
    reply = [b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{", b'"x": 1}', CLOSE]
    async with always(reply) as server:
        t = transport()
        assert await post(t, server.url) == b'{"x": 1}'
        assert await post(t, server.url) == b'{"x": 1}'
        await t.aclose()
    assert server.connections == 2


async def test_connection_close_is_honoured() -> None:
    async with always(answer(headers="Connection: close\r\n")) as server:
        t = transport()
        await post(t, server.url)
        await post(t, server.url)
        await t.aclose()
    assert server.connections == 2


async def test_an_interim_answer_is_skipped_and_reason_and_headers_are_read() -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + answer(
        b"{}", status="429 Too Many", headers="Retry-After: 7\r\nX-A: 1\r\nx-a: 2\r\n"
    )
    async with always(reply) as server:
        t = transport()
        target = t.target(server.url)
        assert target is not None
        response = await t.post(target, HEADERS, b"{}")
        await t.aclose()
    assert (response.status, response.reason) == (429, "Too Many")
    assert response.headers["retry-after"] == "7" and response.headers["x-a"] == "1, 2"


@pytest.mark.parametrize(
    "reply",
    [
        answer(b"x" * 1001),
        chunked(b"x" * 600, b"x" * 600),
        [b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 600, b"x" * 600, CLOSE],
    ],
    ids=["length", "chunked", "to-eof"],
)
async def test_a_body_over_the_limit_is_refused(reply: Reply) -> None:
    async with always(reply) as server:
        t = transport(max_body=1000)
        with pytest.raises(BodyTooLargeError):
            await post(t, server.url)
        await t.aclose()


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_HEAD + b"\r\n\r\n", "headers larger"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_HEAD, "headers larger"),  # and no end
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "invalid HTTP status line"),
        (b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "invalid header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    ],
    ids=["big-headers", "endless-headers", "status-line", "fold", "length", "coding", "chunk"],
)
async def test_bytes_that_are_not_http_are_an_error(reply: bytes, match: str) -> None:
    async with always([reply, HANG]) as server:
        t = transport()
        with pytest.raises(BadResponseError, match=match):
            await post(t, server.url)
        await server.wait_closed(1)  # the connection is closed, not pooled
        await t.aclose()


async def test_a_call_cancelled_mid_body_closes_its_connection() -> None:
    half = answer(b"x" * 100)[:-50]
    async with always([half, HANG]) as server:
        t = transport()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await post(t, server.url)
        await server.wait_closed(1)
        assert not t._pools[t.target(server.url).origin].open  # type: ignore[union-attr]
        await t.aclose()


async def test_a_refused_connection_says_so() -> None:
    t = transport()
    with pytest.raises(ConnectError) as info:
        await post(t, f"http://127.0.0.1:{free_port()}/api/chat")
    assert isinstance(info.value.os_error, ConnectionRefusedError)


async def test_a_header_with_a_line_break_is_not_sent() -> None:
    t = transport()
    target = t.target("http://127.0.0.1:9/api/chat")
    assert target is not None
    with pytest.raises(ValueError, match="CR or LF"):
        await t.post(target, {"X-Evil": "a\r\nInjected: 1"}, b"")


# -- what the provider makes of it ------------------------------------------------------------


async def provider_error(reply: Reply, *, native: bool = True) -> Exception:
    async with always(reply) as server:
        provider = AiohttpProvider(max_answer_chars=10, transport=native)
        try:
            await provider.complete(
                spec("ollama_chat", server.url[: -len("/api/chat")]), question()
            )
        except Exception as exc:
            return exc
        finally:
            await provider.aclose()
    raise AssertionError("no error")


@pytest.mark.parametrize("native", [True, False], ids=["transport", "aiohttp"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_an_oversize_answer_is_a_response_error_on_both_transports(
    native: bool, framing: str
) -> None:
    body = b"x" * (response_limit(10) + 1)
    reply = answer(body) if framing == "length" else chunked(body[:600_000], body[600_000:])
    error = await provider_error(reply, native=native)
    assert type(error) is ProviderResponseError
    assert str(error) == (
        f"response from provider over {response_limit(10)} bytes "
        "(12 x limits.max_answer_chars + 1 MiB)"
    )


async def test_garbage_is_a_connection_error_naming_the_origin() -> None:
    error = await provider_error(b"garbage\r\n\r\n")
    assert type(error) is ProviderConnectionError
    assert str(error).startswith("connection error (http://127.0.0.1:")
    assert "invalid HTTP status line" in str(error)
