"""The HTTP/1.1 answer parser of ``transport.py`` and the errors of both.

``ResponseParser`` reads one answer to a request that is not ``HEAD``: the status line
and headers (at most ``MAX_HEAD`` bytes; header names lower-cased, repeats joined with
", ", obs-folded lines refused), then the body framed by ``Content-Length``, by the
chunked transfer coding (extensions and trailers dropped; a size line of at most
``MAX_LINE`` bytes) or by the end of the connection, at most ``max_body`` bytes. Interim
1xx answers are skipped; 101, a ``Transfer-Encoding`` other than ``chunked``, a
``Content-Encoding`` other than ``identity``, conflicting ``Content-Length``s and bytes
that are not HTTP are errors. ``keep_alive`` says whether the connection may carry the
next request once the answer is whole. Pure: no I/O, so it is fuzzed alone.
"""

from __future__ import annotations

import re

MAX_HEAD = 64 * 1024
MAX_LINE = 1024
_STATUS = re.compile(r"HTTP/1\.([01]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_HEADERS = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
_CHUNK_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?")


class TransportError(Exception):
    """A call that got no complete, well-formed answer."""


class ConnectError(TransportError):
    """No connection to the upstream (``os_error``: why; refused, unreachable, no such host)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ConnectionBrokenError(TransportError):
    """The connection ended before the whole answer (``answered``: any byte of it arrived)."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class BadResponseError(TransportError):
    """Bytes that are not an HTTP/1.1 answer this module reads."""


class BodyTooLargeError(TransportError):
    """An answer's body over the byte limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body over {limit} bytes")
        self.limit = limit


_HEAD, _LENGTH, _CHUNK_SIZE_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _EOF, _DONE = range(8)


class ResponseParser:
    """One answer's bytes in, ``feed`` returns True once it is whole; raises on bad bytes."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.buffer = bytearray()
        self.state = _HEAD
        self.started = False
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.body = bytearray()
        self.remaining = 0
        self.trailer_bytes = 0

    def feed(self, data: bytes) -> bool:
        if data:
            self.started = True
            self.buffer += data
        buffer = self.buffer
        while True:
            state = self.state
            if state == _HEAD:
                if not self._head():
                    return False
            elif state in (_LENGTH, _CHUNK_DATA):
                take = min(self.remaining, len(buffer))
                self.body += buffer[:take]
                del buffer[:take]
                self.remaining -= take
                if self.remaining:
                    return False
                self.state = _DONE if state == _LENGTH else _CHUNK_END
            elif state == _CHUNK_SIZE_LINE:
                end = buffer.find(b"\r\n", 0, MAX_LINE + 2)
                if end < 0:
                    if len(buffer) > MAX_LINE:
                        raise BadResponseError("chunk size line too long")
                    return False
                match = _CHUNK_SIZE.fullmatch(buffer, 0, end)
                if match is None:
                    raise BadResponseError("malformed chunk size")
                size = int(match[1], 16)
                del buffer[: end + 2]
                if len(self.body) + size > self.max_body:
                    raise BodyTooLargeError(self.max_body)
                self.remaining = size
                self.state = _CHUNK_DATA if size else _TRAILERS
            elif state == _CHUNK_END:
                if len(buffer) < 2:
                    return False
                if buffer[:2] != b"\r\n":
                    raise BadResponseError("malformed chunk end")
                del buffer[:2]
                self.state = _CHUNK_SIZE_LINE
            elif state == _TRAILERS:
                end = buffer.find(b"\r\n")
                self.trailer_bytes += len(buffer) if end < 0 else end + 2
                if self.trailer_bytes > MAX_HEAD:
                    raise BadResponseError(f"trailers larger than {MAX_HEAD} bytes")
                if end < 0:
                    return False
                del buffer[: end + 2]
                if end == 0:
                    self.state = _DONE
            elif state == _EOF:
                if len(self.body) + len(buffer) > self.max_body:
                    raise BodyTooLargeError(self.max_body)
                self.body += buffer
                buffer.clear()
                return False
            else:  # _DONE: bytes after the answer mean the connection cannot be trusted
                if buffer:
                    self.keep_alive = False
                return True

    def feed_eof(self) -> bool:
        """The connection ended: True if that completes the answer, else raises."""
        if self.state == _EOF:
            self.state = _DONE
            self.keep_alive = False
            return True
        if self.state == _DONE:
            return True
        if not self.started:
            raise ConnectionBrokenError("Server disconnected", answered=False)
        if self.state == _HEAD:
            raise ConnectionBrokenError(
                "server closed the connection within the headers", answered=True
            )
        raise ConnectionBrokenError(
            f"Response payload is not completed: connection closed after {len(self.body)} bytes",
            answered=True,
        )

    def _head(self) -> bool:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise BadResponseError(f"response headers larger than {MAX_HEAD} bytes")
            return False
        head = buffer[: end + 2].decode("latin-1")
        del buffer[: end + 4]
        first = head.find("\r\n")
        match = _STATUS.fullmatch(head, 0, first)
        if match is None:
            raise BadResponseError(f"invalid HTTP status line: {head[: min(first, 80)]!r}")
        if not _HEADERS.fullmatch(head, first + 2):  # every line at once: one C call
            bad = next(
                x for x in head[first + 2 :].split("\r\n") if not _HEADERS.fullmatch(x + "\r\n")
            )
            raise BadResponseError(f"invalid header line: {bad[:80]!r}")
        status = int(match[2])
        headers: dict[str, str] = {}
        for line in head[first + 2 : -2].split("\r\n") if end > first else ():
            name, _, value = line.partition(":")
            value = value.strip(" \t")
            name = name.lower()
            known = headers.get(name)
            if known is None:
                headers[name] = value
            elif name == "content-length":
                if known != value:
                    raise BadResponseError("conflicting Content-Length headers")
            else:
                headers[name] = f"{known}, {value}"
        if 100 <= status < 200:
            if status == 101:
                raise BadResponseError("unexpected protocol upgrade")
            return True  # an interim answer: the real one follows
        self.status, self.reason, self.headers = status, match[3] or "", headers
        self._framing(match[1] == "1", headers)
        return True

    def _framing(self, http11: bool, headers: dict[str, str]) -> None:
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self.keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens
        coding = headers.get("content-encoding", "identity").strip().lower()
        if coding != "identity":
            raise BadResponseError(f"unsupported Content-Encoding: {coding[:40]!r}")
        length = headers.get("content-length")
        if self.status in (204, 304):
            self.state = _DONE
        elif "transfer-encoding" in headers:
            if headers["transfer-encoding"].strip().lower() != "chunked":
                raise BadResponseError("unsupported Transfer-Encoding")
            self.state = _CHUNK_SIZE_LINE
            if length is not None:
                self.keep_alive = False  # both framings: take chunked, trust no more
        elif length is not None:
            if not (length.isascii() and length.isdigit() and len(length) <= 18):
                raise BadResponseError(f"invalid Content-Length: {length[:40]!r}")
            self.remaining = int(length)
            if self.remaining > self.max_body:
                raise BodyTooLargeError(self.max_body)
            self.state = _LENGTH if self.remaining else _DONE
        else:
            self.state = _EOF
            self.keep_alive = False
