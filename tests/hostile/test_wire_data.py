"""Issue 10, item 6: malformed wire data, huge echoes and huge answers.

Before: bad UTF-8 or a corrupt message was UNKNOWN "Unexpected <class DecodeError>" with a
7-line traceback per call; a 1 MB ``chain`` or ``role`` was echoed whole into the status, and
the client got "metadata size exceeds hard limit"; a 4.1 MB answer made an 8.4 MB reply that
a default client (4 MiB) refused while the server counted the call OK. After: such requests
are INVALID_ARGUMENT with one log line; errors quote at most 200 characters of a value,
status messages at most 1000 and attempt reasons at most 500; an answer over
``limits.max_answer_chars`` is rejected as "answer too large" and the chain goes on, and the
largest accepted answer fits a default client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llm_router.client import route_failure
from llm_router.v1 import router_pb2
from llm_router_server.config.model import ValidationPolicy
from llm_router_server.types import ModelSpec, RouteEvent, RouteStatus
from tests.support.server import Running, Serve, ollama
from tests.support.upstream import Answer, FakeUpstream

pytestmark = pytest.mark.timeout(120)

ROUTE = "/llm_router.v1.Router/Route"
DEFAULT_CLIENT_LIMIT = 4 * 1024 * 1024


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (the payloads here stay under 128 bytes)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


GOOD_MESSAGE = _field(1, _field(1, b"user") + _field(2, b"hi"))
UNDECODABLE = {
    "bad UTF-8 in a message": _field(1, _field(1, b"user") + _field(2, b"caf\xc3(")),
    "bad UTF-8 in the context": GOOD_MESSAGE + _field(3, b"\xff\xfe ctx"),
    "a corrupt message": b"\xff\xff\xff\xff",
    "a truncated message": GOOD_MESSAGE[:-1],
}


def message(text: str = "hi", role: str = "user") -> list[router_pb2.Message]:
    return [router_pb2.Message(role=role, content=text)]


async def raw_call(server: Running, method: str, data: bytes, *, registered: bool) -> bytes:
    call = server.channel.unary_unary(method, _registered_method=registered)
    reply: bytes = await call(data, timeout=10)
    return reply


@pytest.mark.parametrize("registered", [True, False], ids=["registered", "generic"])
@pytest.mark.parametrize("payload", UNDECODABLE.values(), ids=UNDECODABLE.keys())
async def test_a_request_that_does_not_decode_is_invalid_argument_with_one_log_line(
    serve: Serve,
    upstream: Callable[[], FakeUpstream],
    caplog: pytest.LogCaptureFixture,
    payload: bytes,
    registered: bool,
) -> None:
    up = upstream()
    server = await serve([ollama(up)])
    assert await raw_call(server, ROUTE, GOOD_MESSAGE, registered=registered)  # decodes: OK
    caplog.clear()
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await raw_call(server, ROUTE, payload, registered=registered)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(
        "the request message could not be decoded: Error parsing message"
    )
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].exc_info is None
    assert warnings[0].getMessage().startswith(f"undecodable request to {ROUTE} from ipv4:")
    assert len(up.chat_requests()) == 1  # only the good call reached a model


async def test_health_and_watch_requests_that_do_not_decode_are_invalid_argument(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    server = await serve([ollama(upstream())])
    for method in ("/grpc.health.v1.Health/Check", "/llm_router.v1.Router/WatchMetrics"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            if method.endswith("Check"):
                await raw_call(server, method, b"\x0a\x02\xff\xfe", registered=True)
            else:
                stream = server.channel.unary_stream(method, _registered_method=True)
                async for _ in stream(b"\x22\x02\xff\xfe", timeout=10):
                    pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
    health = health_pb2_grpc.HealthStub(server.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("fields", "quoted"),
    [
        ({"chain": "c" * 1_000_000}, "unknown chain 'ccc"),
        ({"messages": message(role="r" * 1_000_000)}, "messages[0].role is 'rrr"),
    ],
    ids=["chain", "role"],
)
async def test_an_error_echoes_at_most_200_characters_of_a_huge_value(
    serve: Serve, upstream: Callable[[], FakeUpstream], fields: dict[str, object], quoted: str
) -> None:
    server = await serve([ollama(upstream())])
    request = router_pb2.RouteRequest(**{"messages": message(), **fields})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.stub.Route(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # not "metadata size exceeds"
    details = info.value.details() or ""
    assert quoted in details and "...'" in details
    assert len(details) < 400


async def test_a_huge_resume_id_is_echoed_shortened(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    server = await serve([ollama(upstream())])
    request = router_pb2.WatchMetricsRequest(resume_after_event_id="9-x" * 300_000)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in server.stub.WatchMetrics(request, timeout=10):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert details.startswith("resume_after_event_id: not an event id") and len(details) < 400


async def test_an_oversized_answer_is_rejected_as_such_and_the_chain_goes_on(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    big, good = upstream(), upstream()
    big.default = Answer("x" * 4_100_000)
    good.default = Answer("fine")
    server = await serve([ollama(big), ModelSpec("ollama_chat/good", 5, api_base=good.url)])
    events: list[RouteEvent] = []
    server.app.bus.observe(events.append)
    reply = await server.stub.Route(router_pb2.RouteRequest(messages=message()), timeout=30)
    assert reply.model_used == "ollama_chat/good" and reply.content.string_value == "fine"
    first = reply.attempts[0]
    assert first.outcome == router_pb2.ATTEMPT_OUTCOME_REJECTED
    assert first.reason_category == router_pb2.REASON_CATEGORY_PROVIDER_ERROR
    assert first.reason == (
        "answer too large: 4100000 characters; the limit is 500000 (limits.max_answer_chars)"
    )
    assert [e.status for e in events] == [RouteStatus.OK]


@pytest.mark.parametrize(
    ("text", "schema"),
    [
        ("\U0001f600" * 500_000, ""),  # 4 bytes a character, in content and in raw_text
        ("[" + ",".join("0" * 249_999) + "]", '{"type": "array"}'),  # numbers grow as Values
    ],
    ids=["emoji-text", "json-array"],
)
async def test_the_largest_accepted_answer_fits_a_default_client(
    serve: Serve, upstream: Callable[[], FakeUpstream], text: str, schema: str
) -> None:
    up = upstream()
    up.default = Answer(text)
    # Judging a 2 MB answer in a worker is what is not timed here (tests/hostile/test_stalls.py
    # times the budget): a generous one, so a busy machine cannot turn this into a timeout.
    server = await serve([ollama(up)], validation=ValidationPolicy(answer_budget_ms=30_000))
    assert len(text) <= 500_000
    request = router_pb2.RouteRequest(messages=message(), schema=schema)
    reply = await server.stub.Route(request, timeout=60)  # a default channel: 4 MiB
    assert reply.raw_text == text
    assert reply.ByteSize() < DEFAULT_CLIENT_LIMIT
    if schema:
        assert len(reply.content.list_value.values) == 249_999


async def test_reasons_quoting_a_huge_answer_are_bounded_and_the_failure_reaches_the_client(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """Both models answer JSON whose 400k-character string fails the schema; jsonschema's
    message quotes it whole. The client still gets UNAVAILABLE with every attempt."""
    first, second = upstream(), upstream()
    huge = json.dumps({"n": "9" * 400_000})
    first.default = second.default = Answer(huge)
    server = await serve([ollama(first), ModelSpec("ollama_chat/second", 5, api_base=second.url)])
    schema = '{"type": "object", "properties": {"n": {"type": "integer"}}}'
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.stub.Route(
            router_pb2.RouteRequest(messages=message(), schema=schema), timeout=60
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(info.value.details() or "") <= 1000
    failure = route_failure(info.value.trailing_metadata())
    assert failure is not None and len(failure.attempts) == 2
    for attempt in failure.attempts:
        assert attempt.reason_category == router_pb2.REASON_CATEGORY_SCHEMA_MISMATCH
        assert attempt.reason.startswith("schema mismatch at $.n: '9999")
        assert len(attempt.reason) <= 500 and attempt.reason.endswith("...")
