"""``http11.ResponseParser`` fuzzed: any answer it should read, cut anywhere, reads the same;
any bytes at all end in an answer, a wait for more, or a ``TransportError``, within bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_router_server.providers.http11 import (
    MAX_HEAD,
    BodyTooLargeError,
    ResponseParser,
    TransportError,
)

MAX_BODY = 4096
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-ABCXYZ0189!#$", min_size=1, max_size=12)
VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
RESERVED = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({min(p, len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def read(pieces: list[bytes], eof: bool) -> ResponseParser | None:
    parser = ResponseParser(MAX_BODY)
    for piece in pieces:
        if parser.feed(piece):
            return parser
    if eof and parser.feed_eof():
        return parser
    return None


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, int, str, dict[str, str], bytes, str]:
    status = draw(st.integers(200, 599).filter(lambda s: s not in (204, 304)))
    reason = draw(st.text("abc XYZ", max_size=20))
    headers = draw(st.dictionaries(TOKEN.filter(lambda n: n.lower() not in RESERVED), VALUE))
    headers = {k: v for k, v in headers.items() if k.lower() == k}  # one spelling each
    body = draw(st.binary(max_size=MAX_BODY))
    framing = draw(st.sampled_from(["length", "chunked", "eof"]))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if framing == "length":
        head += f"Content-Length: {len(body)}\r\n"
        payload = body
    elif framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n"
        sizes = draw(st.lists(st.integers(1, 600), max_size=8))
        payload, rest = b"", body
        for size in [*sizes, len(rest)]:
            piece, rest = rest[:size], rest[size:]
            if piece:
                payload += f"{len(piece):X}\r\n".encode() + piece + b"\r\n"
        payload += b"0\r\n\r\n"
    else:
        payload = body
    return head.encode() + b"\r\n" + payload, status, reason, headers, body, framing


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(answers(), st.lists(st.integers(0, 6000), max_size=12))
def test_an_answer_cut_anywhere_reads_the_same(
    generated: tuple[bytes, int, str, dict[str, str], bytes, str], points: list[int]
) -> None:
    data, status, reason, headers, body, framing = generated
    parser = read(cut(data, points), eof=framing == "eof")
    assert parser is not None
    assert (parser.status, parser.reason, bytes(parser.body)) == (status, reason, body)
    for name, value in headers.items():
        assert parser.headers[name] == value.strip(" \t")
    assert parser.keep_alive == (framing != "eof")


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from(
                [
                    b"HTTP/1.1 200 OK\r\n",
                    b"HTTP/1.0 100 x\r\n\r\n",
                    b"Content-Length: 5\r\n",
                    b"Content-Length: 99999999999\r\n",
                    b"Transfer-Encoding: chunked\r\n",
                    b"\r\n",
                    b"5\r\nabcde\r\n",
                    b"fffffff\r\n",
                    b"0\r\n\r\n",
                ]
            ),
        ),
        max_size=20,
    ),
    st.booleans(),
)
def test_any_bytes_end_in_an_answer_a_wait_or_a_transport_error(
    pieces: list[bytes], eof: bool
) -> None:
    parser = ResponseParser(MAX_BODY)
    done = False
    try:
        for piece in pieces:
            done = parser.feed(piece)
            assert len(parser.body) <= MAX_BODY
            if done:
                break
        if eof and not done:
            done = parser.feed_eof()
    except TransportError:
        return
    assert len(parser.body) <= MAX_BODY
    assert parser.state == 0 or len(parser.buffer) <= MAX_HEAD + 400  # no unbounded growth
    if done:
        assert 200 <= parser.status <= 999


def test_a_huge_chunk_size_is_refused_before_its_bytes() -> None:
    parser = ResponseParser(MAX_BODY)
    with pytest.raises(BodyTooLargeError):
        parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n")


def test_latin1_digits_are_not_a_length() -> None:
    parser = ResponseParser(MAX_BODY)
    with pytest.raises(TransportError, match="Content-Length"):
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n")
