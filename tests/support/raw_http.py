"""A raw HTTP/1.1 server on 127.0.0.1 that answers with exactly the bytes a test gives.

``RawServer(reply)`` runs on the test's own event loop. For each request it reads the
head and the ``Content-Length`` body, records it, and calls ``reply(connection, index)``
(the connection's number from 0, the request's number on that connection from 0), which
returns what to do: bytes to send, a list of them (sent with a pause between, so the
client reads them in pieces), ``CLOSE`` (close without answering) or ``HANG`` (never
answer). After a reply the connection goes on reading requests unless the reply was
followed by ``CLOSE`` in a list. ``closed`` counts connections the client ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.waiting import eventually

CLOSE = b"<close>"
HANG = b"<hang>"

Reply = bytes | list[bytes]


def answer(body: bytes = b'{"ok": true}', *, headers: str = "", status: str = "200 OK") -> bytes:
    """An HTTP/1.1 answer with ``Content-Length``."""
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    """An HTTP/1.1 answer in the chunked transfer coding, one chunk per piece."""
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for piece in pieces:
        out += f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n"


@dataclass
class Seen:
    connection: int
    index: int
    head: bytes
    body: bytes


@dataclass
class RawServer:
    reply: Callable[[int, int], Reply]
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    closed: int = 0
    """Connections that ended from the client's side (EOF or reset)."""
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api/chat"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_closed(self, n: int) -> None:
        """Until at least ``n`` connections were ended by the client."""
        await eventually(lambda: self.closed >= n)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        number, self.connections = self.connections, self.connections + 1
        try:
            await self._requests(number, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed += 1
        except asyncio.CancelledError:
            pass  # the server is closing (start_server's callback would log a cancelled task)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _requests(
        self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        index = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                self.closed += 1
                return
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            self.requests.append(Seen(number, index, head, body))
            reply = self.reply(number, index)
            index += 1
            for part in [reply] if isinstance(reply, bytes) else reply:
                if part == CLOSE:
                    return
                if part == HANG:
                    await reader.read()  # until the client goes away
                    self.closed += 1
                    return
                writer.write(part)
                await writer.drain()
                if not isinstance(reply, bytes):
                    await asyncio.sleep(0.01)
