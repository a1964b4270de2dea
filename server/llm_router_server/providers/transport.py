"""``Transport``: a small HTTP/1.1 client for the native path's plain ``http://`` upstreams.

The local model (Ollama, llama.cpp, the embedded model) is the hot path of a local-first
router, and aiohttp's own Python cost more per call than the rest of the provider
(bench/README.md, "Where the server's CPU goes"). This module sends one ``POST`` with a
body and reads its answer (``http11.py`` parses it), nothing more.

Speaks: ``http://host[:port]/path`` URLs without credentials; keep-alive connections in a
pool per origin, at most ``limit`` open (more concurrent calls wait for one), idle ones
reused most recent first; what ``http11.py`` reads (``Content-Length``, chunked, or to the
end of the connection; ``Connection: close`` and HTTP/1.0 honoured). Sends ``Host``,
``User-Agent``, ``Content-Length`` and the call's headers (a header with CR or LF is refused).

Does not speak: TLS (``https://``), proxies, URL credentials (``target`` returns None for
those URLs: aiohttp serves them), redirects, compression, ``Expect``, pipelining.

A connection goes back to the pool only after a whole answer that allows it; an error or
a cancellation (a timeout, a caller gone) closes it. A call on a reused connection, idle
for ``STALE_SECONDS`` or more, that ends before any byte of the answer arrived (a keep-alive
connection the server closed for idleness) is sent once more on a new connection, never
otherwise. Idle connections the
server closed, or idle longer than ``IDLE_SECONDS``, are dropped when next looked at.
``aclose`` closes every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from llm_router_server.providers.http11 import (
    ConnectError,
    ConnectionBrokenError,
    ResponseParser,
    TransportError,
)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]
    """Lower-cased names."""
    body: bytes


@dataclass(frozen=True, slots=True)
class Target:
    """Where one URL's requests go, worked out once."""

    origin: str
    host: str
    port: int
    request_line: str
    """``POST /path HTTP/1.1`` through the ``Host`` header, CRLF-terminated."""


STALE_SECONDS = 1.0
"""A reused connection that ends unanswered is taken for one the server closed for idleness
(and the call is sent again) only if it was idle this long: servers' idle timeouts are
seconds. A connection closed sooner after its last answer had the request and dropped it: a
fault, and a model call is not sent twice for it."""
IDLE_SECONDS = 15.0
"""A connection idle longer is not reused (aiohttp's default): a peer or a middlebox may have
dropped it without a word, and a request written into it would wait out its timeout."""


class _Connection(asyncio.Protocol):
    """One TCP connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.waiter: asyncio.Future[ResponseParser] | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    async def exchange(self, message: bytes, max_body: int) -> ResponseParser:
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise ConnectionBrokenError("Server disconnected", answered=False)
        self.parser = ResponseParser(max_body)
        waiter: asyncio.Future[ResponseParser] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        transport.write(message)
        return await waiter

    def data_received(self, data: bytes) -> None:
        waiter, parser = self.waiter, self.parser
        if waiter is None or parser is None or waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            if parser.feed(data):
                waiter.set_result(parser)
        except Exception as exc:  # TransportError, or a bug: either way the call fails
            waiter.set_exception(exc)
            self.close()

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)

    def _ended(self, exc: Exception | None = None) -> None:
        waiter, parser = self.waiter, self.parser
        if waiter is None or parser is None or waiter.done():
            return
        try:
            if parser.feed_eof():
                waiter.set_result(parser)
        except ConnectionBrokenError as broken:
            if exc is not None:
                broken = ConnectionBrokenError(str(exc) or broken.args[0], answered=broken.answered)
            waiter.set_exception(broken)
        except TransportError as error:
            waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


_AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]


def _numeric(host: str, port: int) -> list[_AddressInfo] | None:
    """The address of a numeric host, without a resolver round trip (None: a name)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]


class _Pool:
    """The connections to one origin, on one event loop."""

    def __init__(self, target: Target, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.loop = loop
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[_Connection] = []
        self.open: set[_Connection] = set()

    def checkout(self) -> _Connection | None:
        idle = self.idle
        oldest = self.loop.time() - IDLE_SECONDS
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since > oldest:
                return conn
            conn.close()
            self.open.discard(conn)
        return None

    def checkin(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not conn.closed:
            conn.idle_since = self.loop.time()
            self.idle.append(conn)
        else:
            conn.close()
            self.open.discard(conn)

    async def connect(self) -> _Connection:
        target, loop = self.target, self.loop
        try:
            infos = _numeric(target.host, target.port) or await loop.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise ConnectError(exc) from exc
        errors: list[OSError] = []
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, address)
                _, conn = await loop.create_connection(_Connection, sock=sock)
            except OSError as exc:
                sock.close()
                errors.append(exc)
                continue
            except BaseException:
                sock.close()
                raise
            self.open.add(conn)
            return conn
        refused = [e for e in errors if isinstance(e, ConnectionRefusedError)]
        other = [e for e in errors if not isinstance(e, ConnectionRefusedError)]
        raise ConnectError((other or refused or [OSError(f"no address for {target.host}")])[0])

    def close(self) -> None:
        for conn in list(self.open):
            with contextlib.suppress(RuntimeError):  # its loop is closed: the socket went too
                conn.close()
        self.open.clear()
        self.idle.clear()


class Transport:
    """POSTs over pooled keep-alive connections to plain ``http://`` origins."""

    def __init__(self, *, limit: int, max_body: int, user_agent: str) -> None:
        self.limit = limit
        self.max_body = max_body
        self.user_agent = user_agent
        self._targets: dict[str, Target | None] = {}
        self._pools: dict[str, _Pool] = {}

    def target(self, url: str) -> Target | None:
        """Where ``url``'s requests go, or None when this transport does not speak it."""
        if url in self._targets:
            return self._targets[url]
        found = None
        parts = urlsplit(url)
        try:
            port = parts.port or 80
        except ValueError:
            port = 0
        if parts.scheme == "http" and parts.hostname and port and "@" not in parts.netloc:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.netloc.removesuffix(":80")
            line = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {self.user_agent}\r\n"
            if line.count("\n") == 3 and line.count("\r") == 3 and " " not in path:
                found = Target(f"http://{parts.netloc}", parts.hostname, port, line)
        self._targets[url] = found
        return found

    async def post(self, target: Target, headers: Mapping[str, str], body: bytes) -> Response:
        """Send ``body`` to ``target`` and read the whole answer (or raise a TransportError)."""
        lines = [target.request_line, f"Content-Length: {len(body)}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        lines.append("\r\n")
        head = "".join(lines)
        if head.count("\n") != len(lines) + 2 or head.count("\r") != len(lines) + 2:
            raise ValueError("a request header contains CR or LF")
        message = head.encode() + body
        pool = self._pool(target)
        async with pool.slots:
            for attempt in (1, 2):
                conn = pool.checkout()
                # Only a connection idle long enough may have met the server's idle timeout.
                stale = conn is not None and pool.loop.time() - conn.idle_since >= STALE_SECONDS
                if conn is None:
                    conn = await pool.connect()
                try:
                    parser = await conn.exchange(message, self.max_body)
                except ConnectionBrokenError as exc:
                    pool.checkin(conn, False)
                    if stale and not exc.answered and attempt == 1:
                        continue  # a stale keep-alive connection: once more on a new one
                    raise
                except BaseException:
                    pool.checkin(conn, False)
                    raise
                pool.checkin(conn, parser.keep_alive)
                return Response(parser.status, parser.reason, parser.headers, bytes(parser.body))
        raise AssertionError("unreachable")

    def _pool(self, target: Target) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(target.origin)
        if pool is None or pool.loop is not loop:
            if pool is not None:
                pool.close()
            pool = self._pools[target.origin] = _Pool(target, self.limit, loop)
        return pool

    async def aclose(self) -> None:
        """Close every connection of every pool."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        await asyncio.sleep(0)  # let the transports finish closing
