"""End to end: a real grpc.aio server on port 0, a real channel, real litellm, and fake
providers at the wire (Ollama, Anthropic, OpenAI protocols on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from llm_router import AllModelsFailedError, DeadlineExceededError, InvalidRequestError
from llm_router.v1 import router_pb2
from tests.support.fixtures import Upstream
from tests.support.net import free_port
from tests.support.server import SCHEMA, Serve, anthropic, ollama, openai
from tests.support.upstream import (
    Answer,
    Drop,
    Hang,
    HttpError,
    Malformed,
    SafetyRefusal,
)
from tests.support.waiting import eventually

VALID = '{"action": "restart"}'

pytestmark = pytest.mark.timeout(30)


async def test_first_model_answers(serve: Serve, upstream: Upstream) -> None:
    local, cloud = upstream(), upstream()
    local.script(Answer(VALID, prompt_tokens=12, completion_tokens=5))
    server = await serve([ollama(local), anthropic(cloud)])
    reply = await server.route(schema=json.dumps(SCHEMA), context="test.success")
    assert reply.model_used == "ollama_chat/qwen2.5:7b"
    assert json_format.MessageToDict(reply.content) == {"action": "restart"}
    assert reply.raw_text == VALID
    assert reply.chain == "default"
    [attempt] = reply.attempts
    assert attempt.outcome == router_pb2.ATTEMPT_OUTCOME_SUCCESS
    assert attempt.reason_category == router_pb2.REASON_CATEGORY_UNSPECIFIED
    assert (attempt.usage.prompt_tokens, attempt.usage.completion_tokens) == (12, 5)
    assert reply.latency_ms >= attempt.latency_ms > 0
    assert cloud.chat_requests() == []


async def test_free_text_answer_is_a_string_value(serve: Serve, upstream: Upstream) -> None:
    local = upstream()
    local.script(Answer("Restart nginx."))
    server = await serve([ollama(local)])
    reply = await server.route()
    assert reply.content.string_value == "Restart nginx."


@pytest.mark.parametrize(
    ("behaviour", "outcome", "category", "in_reason"),
    [
        (HttpError(503), "REJECTED", "PROVIDER_ERROR", "503"),
        (HttpError(500), "REJECTED", "PROVIDER_ERROR", "500"),
        (Hang(), "REJECTED", "TIMEOUT", "no answer within"),
        (Drop(), "REJECTED", "PROVIDER_ERROR", ""),
        (Malformed(), "REJECTED", "PROVIDER_ERROR", ""),
        (Answer("I cannot help with that."), "REJECTED", "REFUSAL", "I cannot"),
        (Answer("restart it, obviously"), "INVALID", "INVALID_JSON", "not JSON"),
        (Answer('{"action": "panic"}'), "INVALID", "SCHEMA_MISMATCH", "action"),
    ],
    ids=["503", "500", "hang", "drop", "malformed", "refusal", "not-json", "schema"],
)
async def test_rejection_falls_through_to_the_next_model(
    serve: Serve,
    upstream: Upstream,
    behaviour: object,
    outcome: str,
    category: str,
    in_reason: str,
) -> None:
    local, cloud = upstream(), upstream()
    local.script(behaviour)  # type: ignore[arg-type]
    cloud.script(Answer(VALID))
    server = await serve([ollama(local, timeout=0.5), anthropic(cloud)])
    reply = await server.route(schema=json.dumps(SCHEMA))
    assert reply.model_used == "anthropic/claude-haiku-4-5-20251001"
    first, second = reply.attempts
    assert router_pb2.AttemptOutcome.Name(first.outcome) == f"ATTEMPT_OUTCOME_{outcome}"
    assert router_pb2.ReasonCategory.Name(first.reason_category) == f"REASON_CATEGORY_{category}"
    assert in_reason in first.reason
    assert "\n" not in first.reason and len(first.reason) <= 400
    assert second.outcome == router_pb2.ATTEMPT_OUTCOME_SUCCESS


async def test_connection_refused_falls_through(serve: Serve, upstream: Upstream) -> None:
    cloud = upstream()
    cloud.script(Answer(VALID))
    dead = ollama(cloud)
    dead = type(dead)(dead.model, timeout=2, api_base=f"http://127.0.0.1:{free_port()}")
    server = await serve([dead, anthropic(cloud)])
    reply = await server.route(schema=json.dumps(SCHEMA))
    assert reply.attempts[0].reason_category == router_pb2.REASON_CATEGORY_PROVIDER_ERROR
    assert reply.attempts[0].latency_ms < 1500
    assert reply.model_used.startswith("anthropic/")


async def test_claude_safety_refusal_is_a_refusal_not_invalid_json(
    serve: Serve, upstream: Upstream
) -> None:
    claude, backup = upstream(), upstream()
    claude.script(SafetyRefusal())
    backup.script(Answer(VALID))
    server = await serve([anthropic(claude), openai(backup)])
    reply = await server.route(schema=json.dumps(SCHEMA))
    # A provider's safety block has its own category, apart from text-pattern refusals.
    assert reply.attempts[0].reason_category == router_pb2.REASON_CATEGORY_SAFETY_REFUSAL
    assert reply.model_used == "openai/gpt-test"


async def test_fenced_json_from_a_real_provider_is_accepted(
    serve: Serve, upstream: Upstream
) -> None:
    local = upstream()
    local.script(Answer(f"Here you go:\n```json\n{VALID}\n```"))
    server = await serve([ollama(local)])
    reply = await server.route(schema=json.dumps(SCHEMA))
    assert json_format.MessageToDict(reply.content) == {"action": "restart"}


async def test_schema_is_sent_to_ollama_as_native_format(serve: Serve, upstream: Upstream) -> None:
    local = upstream()
    local.script(Answer(VALID))
    server = await serve([ollama(local)])
    await server.route(schema=json.dumps(SCHEMA))
    [request] = local.chat_requests()
    assert request.body["format"] == SCHEMA


async def test_all_failed_is_unavailable_with_typed_attempts(
    serve: Serve, upstream: Upstream
) -> None:
    local, cloud = upstream(), upstream()
    local.script(HttpError(503))
    cloud.script(Answer("As an AI, I don't know."))
    server = await serve([ollama(local), anthropic(cloud)])
    with pytest.raises(AllModelsFailedError) as info:
        await server.client.route([{"role": "user", "content": "hi"}], context="t")
    error = info.value
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert [(a.model, a.outcome, a.reason_category) for a in error.attempts] == [
        ("ollama_chat/qwen2.5:7b", "rejected", "provider_error"),
        ("anthropic/claude-haiku-4-5-20251001", "rejected", "refusal"),
    ]
    assert error.chain == "default"
    assert "ollama_chat/qwen2.5:7b" in error.message and "refusal" in error.message


async def test_all_failed_status_detail_is_a_standard_rich_status(
    serve: Serve, upstream: Upstream
) -> None:
    local = upstream()
    local.script(HttpError(500))
    server = await serve([ollama(local)])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.route()
    status = rpc_status.from_call(info.value)
    assert status is not None and status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    failure = router_pb2.RouteFailure()
    assert status.details[0].Unpack(failure)
    assert failure.attempts[0].model == "ollama_chat/qwen2.5:7b"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"messages": []}, "messages is empty"),
        ({"messages": [router_pb2.Message(role="wizard", content="x")]}, "role is 'wizard'"),
        ({"messages": [router_pb2.Message(role="user", content="")]}, "content is empty"),
        ({"schema": "{oops"}, "schema is not valid JSON"),
        ({"schema": '{"type": 12}'}, "schema is not a valid JSON Schema"),
        ({"chain": "missing"}, "unknown chain 'missing'"),
    ],
)
async def test_bad_requests_get_invalid_argument_and_call_no_model(
    serve: Serve, upstream: Upstream, fields: dict[str, object], message: str
) -> None:
    local = upstream()
    server = await serve([ollama(local)])
    request = router_pb2.RouteRequest(
        messages=fields.pop("messages", [router_pb2.Message(role="user", content="hi")]),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.stub.Route(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (info.value.details() or "")
    assert local.chat_requests() == []


async def test_invalid_argument_through_the_typed_client(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream())])
    with pytest.raises(InvalidRequestError, match="unknown chain"):
        await server.client.route([{"role": "user", "content": "hi"}], chain="nope")


async def test_deadline_budgets_the_chain_and_returns_the_attempts(
    serve: Serve, upstream: Upstream
) -> None:
    local, cloud = upstream(Hang()), upstream()
    server = await serve([ollama(local, timeout=8), anthropic(cloud, timeout=30)])
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceededError) as info:
        await server.client.route([{"role": "user", "content": "hi"}], timeout=1.0)
    assert loop.time() - started < 1.5
    attempts = info.value.attempts
    assert [(a.outcome, a.reason_category) for a in attempts] == [
        ("rejected", "timeout"),
        ("skipped", "skipped"),
    ]
    assert "deadline" in attempts[0].reason
    assert cloud.chat_requests() == []
    assert await local.wait_for_disconnects(1, 2.0)


async def test_client_cancellation_cancels_the_upstream_request(
    serve: Serve, upstream: Upstream
) -> None:
    local = upstream(Hang())
    server = await serve([ollama(local, timeout=20)])
    watcher = server.app.bus.subscribe()
    call = server.stub.Route(
        router_pb2.RouteRequest(messages=[router_pb2.Message(role="user", content="hi")]),
        timeout=30,
    )
    await eventually(local.chat_requests)
    call.cancel()
    assert await local.wait_for_disconnects(1, 3.0), "upstream request was orphaned"
    event = await asyncio.wait_for(watcher.get(), 3)
    assert event.status.value == "cancelled"


async def test_watch_metrics_sends_a_snapshot_then_events(serve: Serve, upstream: Upstream) -> None:
    local = upstream(Answer("fine"))
    server = await serve([ollama(local)])
    await server.route(context="warm")
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    first = await stream.read()
    assert first.WhichOneof("kind") == "snapshot"
    assert [(m.model, m.success) for m in first.snapshot.models] == [("ollama_chat/qwen2.5:7b", 1)]
    await server.route(context="watched")
    second = await asyncio.wait_for(stream.read(), 5)
    assert second.event.context == "watched"
    assert second.event.status == router_pb2.ROUTE_STATUS_OK
    assert second.event.model_used == "ollama_chat/qwen2.5:7b"
    stream.cancel()


async def test_watch_metrics_rejects_a_negative_interval(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream())])
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest(snapshot_interval_seconds=-1))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_reports_serving_for_the_server_and_the_router(
    serve: Serve, upstream: Upstream
) -> None:
    server = await serve([ollama(upstream())])
    for service in ("", "llm_router.v1.Router"):
        reply = await server.health(service)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_open_object_schema_through_claude_uses_the_json_tool_and_still_validates(
    serve: Serve, upstream: Upstream
) -> None:
    """An open-object schema goes to Claude as a forced tool call, not output_format (on both
    paths); the tool's input comes back as the answer and is validated like any other."""
    claude = upstream()
    claude.script(Answer('{"prime": true, "why": "no divisors"}'))
    server = await serve([anthropic(claude)])
    open_schema = {"type": "object", "required": ["prime"]}
    reply = await server.route(schema=json.dumps(open_schema))
    [request] = claude.chat_requests()
    assert request.body["tool_choice"]["type"] == "tool"
    assert json_format.MessageToDict(reply.content) == {"prime": True, "why": "no divisors"}
