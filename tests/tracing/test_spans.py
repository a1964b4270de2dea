"""Traces of Route calls: the caller's W3C context continues into a Route span with one
GenAI span per attempt, and on to the provider as ``traceparent``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from llm_router_server import logs
from llm_router_server.config import TracingConfig
from tests.support.server import anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream, HttpError
from tests.tracing.servers import PARENT_ID, TRACE_ID, TRACEPARENT

HAIKU_IN, HAIKU_OUT = 1.0, 5.0
"""Claude Haiku 4.5's price in USD per million tokens, in litellm's bundled table."""


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The server's log lines, as ``llm-router serve`` writes them (text format)."""
    stream = io.StringIO()
    handler = logs.configure("text", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


async def test_a_call_that_fell_back_is_one_route_span_with_a_span_per_attempt(
    upstream: Any, traced: Any, log_lines: io.StringIO
) -> None:
    up: FakeUpstream = upstream()
    up.on_path("/api/chat", HttpError(500))
    up.on_path(
        "/v1/messages", Answer('{"action": "restart"}', prompt_tokens=21, completion_tokens=5)
    )
    server = await traced([ollama(up), anthropic(up)])

    reply = await server.route(context="tests.trace", metadata=[("traceparent", TRACEPARENT)])

    assert reply.model_used == "anthropic/claude-haiku-4-5-20251001"
    spans = by_name(await server.settled_spans())
    assert sorted(spans) == [
        "chat claude-haiku-4-5-20251001",
        "chat qwen2.5:7b",
        "llm_router.v1.Router/Route",
    ]
    route = spans["llm_router.v1.Router/Route"]
    local, cloud = spans["chat qwen2.5:7b"], spans["chat claude-haiku-4-5-20251001"]
    # The caller's trace continues: same trace id, the caller's span is the parent.
    assert f"{route.context.trace_id:032x}" == TRACE_ID
    assert route.parent is not None and f"{route.parent.span_id:016x}" == PARENT_ID
    assert route.kind is SpanKind.SERVER
    assert attrs(route) == {
        "rpc.system": "grpc",
        "rpc.service": "llm_router.v1.Router",
        "rpc.method": "Route",
        "rpc.grpc.status_code": 0,
        "llm_router.chain": "default",
        "llm_router.status": "ok",
        "llm_router.model_used": "anthropic/claude-haiku-4-5-20251001",
        "llm_router.context": "tests.trace",
        "llm_router.attempts": 2,
        # The local model has no price here: the call's cost is unknown (absent); a priced
        # model answered, so nothing was avoided.
        "llm_router.cost_avoided_usd": 0.0,
    }
    for span in (local, cloud):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == route.context.span_id
        assert span.context.trace_id == route.context.trace_id
    assert local.start_time is not None and cloud.start_time is not None
    assert local.start_time < cloud.start_time
    assert attrs(local) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": "qwen2.5:7b",
        "server.address": "127.0.0.1",
        "server.port": int(up.url.rsplit(":", 1)[1]),
        "error.type": "provider_error",
        "llm_router.model": "ollama_chat/qwen2.5:7b",
        "llm_router.locality": "local",
        "llm_router.chain": "default",
        "llm_router.attempt.index": 0,
        "llm_router.attempt.outcome": "rejected",
        "llm_router.attempt.reason_category": "provider_error",
        "llm_router.attempt.repair": 0,
    }
    assert local.status.status_code is StatusCode.ERROR
    assert "HTTP 500" in (local.status.description or "")
    assert attrs(cloud) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-haiku-4-5-20251001",
        "gen_ai.response.model": "claude-haiku-4-5-20251001",
        "gen_ai.usage.input_tokens": 21,
        "gen_ai.usage.output_tokens": 5,
        "server.address": "127.0.0.1",
        "server.port": int(up.url.rsplit(":", 1)[1]),
        "llm_router.model": "anthropic/claude-haiku-4-5-20251001",
        "llm_router.locality": "cloud",  # Claude runs only at Anthropic
        "llm_router.chain": "default",
        "llm_router.attempt.index": 1,
        "llm_router.attempt.outcome": "success",
        "llm_router.attempt.reason_category": "none",
        "llm_router.attempt.repair": 0,
        "llm_router.attempt.cost_usd": pytest.approx((21 * HAIKU_IN + 5 * HAIKU_OUT) / 1e6),
    }
    assert cloud.status.status_code is StatusCode.UNSET
    # Each provider request carried its own attempt span's context.
    sent = [r.headers.get("traceparent") for r in up.chat_requests()]
    assert sent == [
        f"00-{TRACE_ID}-{local.context.span_id:016x}-01",
        f"00-{TRACE_ID}-{cloud.context.span_id:016x}-01",
    ]
    # The log lines of the call carry its trace id.
    fallback_line = next(line for line in log_lines.getvalue().splitlines() if "HTTP 500" in line)
    assert f"trace_id={TRACE_ID}" in fallback_line


async def test_a_repair_is_a_span_of_its_own_and_the_route_span_carries_the_money(
    upstream: Any, traced: Any
) -> None:
    local: FakeUpstream = upstream()
    cloud: FakeUpstream = upstream()
    local.script(
        Answer("not json", prompt_tokens=30, completion_tokens=3),
        Answer('{"action": "restart"}', prompt_tokens=50, completion_tokens=6),
    )
    free = ollama(local, repair_attempts=1, price_per_mtok=(0.0, 0.0))
    server = await traced([free, anthropic(cloud)])

    reply = await server.route(schema=json.dumps({"type": "object"}))

    assert reply.model_used == "ollama_chat/qwen2.5:7b"
    spans = [s for s in server.spans() if s.name == "chat qwen2.5:7b"]
    first, repair = sorted(spans, key=lambda s: s.start_time or 0)
    assert attrs(first)["llm_router.attempt.repair"] == 0
    assert attrs(first)["llm_router.attempt.outcome"] == "invalid"
    assert attrs(repair)["llm_router.attempt.repair"] == 1
    assert attrs(repair)["llm_router.attempt.index"] == 1
    assert attrs(repair)["llm_router.attempt.outcome"] == "success"
    assert attrs(first)["llm_router.attempt.cost_usd"] == 0.0  # free by configuration
    route = by_name(await server.settled_spans())["llm_router.v1.Router/Route"]
    assert attrs(route)["llm_router.cost_usd"] == 0.0
    avoided = (50 * HAIKU_IN + 6 * HAIKU_OUT) / 1e6  # the repair's tokens at Haiku's price
    assert attrs(route)["llm_router.cost_avoided_usd"] == pytest.approx(avoided)
    assert cloud.chat_requests() == []


async def test_the_litellm_path_sends_the_trace_context_too(upstream: Any, traced: Any) -> None:
    up: FakeUpstream = upstream()
    up.default = Answer("fine")
    server = await traced([ollama(up, timeout=50, provider="litellm")])

    await server.route(metadata=[("traceparent", TRACEPARENT)])

    (attempt,) = [s for s in server.spans() if s.name == "chat qwen2.5:7b"]
    (request,) = up.chat_requests()
    assert request.headers.get("traceparent") == f"00-{TRACE_ID}-{attempt.context.span_id:016x}-01"


async def test_without_a_caller_context_the_route_span_starts_a_trace(
    upstream: Any, traced: Any
) -> None:
    up: FakeUpstream = upstream()
    server = await traced([ollama(up)])

    await server.route()

    spans = by_name(await server.settled_spans())
    route = spans["llm_router.v1.Router/Route"]
    assert route.parent is None
    assert spans["chat qwen2.5:7b"].parent.span_id == route.context.span_id  # type: ignore[union-attr]
    assert route.resource.attributes["service.name"] == "llm-router"
    assert route.resource.attributes["service.instance.id"] == "replica-a"


async def test_a_request_rejected_before_any_model_has_a_route_span_and_no_attempt(
    upstream: Any, traced: Any
) -> None:
    up: FakeUpstream = upstream()
    server = await traced([ollama(up)])

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await server.route(chain="no-such-chain", metadata=[("traceparent", TRACEPARENT)])

    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    (route,) = await server.settled_spans()
    assert route.name == "llm_router.v1.Router/Route"
    assert attrs(route)["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert route.status.status_code is StatusCode.UNSET  # the caller's error, not the server's
    assert up.chat_requests() == []


async def test_a_call_where_every_model_failed_is_an_error_span(upstream: Any, traced: Any) -> None:
    up: FakeUpstream = upstream()
    up.default = HttpError(503)
    server = await traced([ollama(up)])

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await server.route()

    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    route = by_name(await server.settled_spans())["llm_router.v1.Router/Route"]
    assert route.status.status_code is StatusCode.ERROR
    assert attrs(route)["error.type"] == "UNAVAILABLE"
    assert attrs(route)["llm_router.status"] == "all_failed"
    assert attrs(route)["llm_router.model_used"] == "none"


async def test_hedged_attempts_are_children_of_the_route_span(upstream: Any, traced: Any) -> None:
    from tests.support.upstream import Slow

    up: FakeUpstream = upstream()
    up.on_path("/api/chat", Slow(1.0, Answer("late")))
    up.on_path("/v1/messages", Answer("early"))
    server = await traced([ollama(up), anthropic(up)], hedge_after_ms=50)

    reply = await server.route()

    assert reply.model_used == "anthropic/claude-haiku-4-5-20251001"
    spans = by_name(await server.settled_spans())
    route = spans["llm_router.v1.Router/Route"]
    local = spans["chat qwen2.5:7b"]
    assert local.parent is not None and local.parent.span_id == route.context.span_id
    assert attrs(local)["llm_router.attempt.reason_category"] == "cancelled"
    assert spans["chat claude-haiku-4-5-20251001"].parent.span_id == route.context.span_id  # type: ignore[union-attr]


async def test_a_caller_that_does_not_sample_gets_no_spans_but_keeps_its_context(
    upstream: Any, traced: Any
) -> None:
    up: FakeUpstream = upstream()
    server = await traced([ollama(up)])

    await server.route(metadata=[("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-00")])

    assert server.spans() == []
    (request,) = up.chat_requests()
    sent = request.headers.get("traceparent", "")
    assert sent.startswith(f"00-{TRACE_ID}-") and sent.endswith("-00")


async def test_sample_ratio_zero_records_no_new_trace(upstream: Any, traced: Any) -> None:
    up: FakeUpstream = upstream()
    server = await traced([ollama(up)], tracing=TracingConfig(enabled=True, sample_ratio=0.0))

    await server.route()

    assert server.spans() == []


async def test_json_log_lines_carry_the_trace_id(upstream: Any, traced: Any) -> None:
    up: FakeUpstream = upstream()
    up.on_path("/api/chat", HttpError(500))
    server = await traced([ollama(up), anthropic(up)])
    stream = io.StringIO()
    handler = logs.configure("json", stream=stream)
    try:
        await server.route(metadata=[("traceparent", TRACEPARENT)])
    finally:
        logging.getLogger().removeHandler(handler)

    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    fallback = next(e for e in entries if "HTTP 500" in e["message"])
    assert fallback["trace_id"] == TRACE_ID
    assert len(fallback["span_id"]) == 16
    assert fallback["level"] == "WARNING"
    assert fallback["logger"] == "llm_router"
