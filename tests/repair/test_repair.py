"""Repair at the wire: a real server and a fake Ollama that answers badly first, and well once
it is shown its answer and the validation error. Each repair is an attempt of its own; the
chain moves on only when the model's repair budget is spent; refusals and provider errors
are never repaired."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from llm_router.v1 import router_pb2
from llm_router_server.config.model import ValidationPolicy
from tests.support.server import Serve, ollama, openai
from tests.support.upstream import Answer, Behaviour, FakeUpstream, Hang, HttpError, SafetyRefusal

pytestmark = pytest.mark.timeout(60)

SCHEMA = {
    "type": "object",
    "required": ["action", "confidence"],
    "properties": {
        "action": {"enum": ["restart", "escalate"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
VALID = '{"action": "restart", "confidence": 0.9}'
OUT_OF_RANGE = '{"action": "restart", "confidence": 1.5}'
NOT_JSON = "Restart it, I am fairly sure."
REPAIR_MARK = "Your answer was rejected:"
LOCAL = "ollama_chat/qwen2.5:7b"
CLOUD = "openai/gpt-test"  # the native path: no litellm start-up in the way

INVALID = router_pb2.ATTEMPT_OUTCOME_INVALID
SUCCESS = router_pb2.ATTEMPT_OUTCOME_SUCCESS
REJECTED = router_pb2.ATTEMPT_OUTCOME_REJECTED


def texts(body: Any) -> list[str]:
    messages = body.get("messages", []) if isinstance(body, dict) else []
    return [m["content"] for m in messages if isinstance(m.get("content"), str)]


def repairs_seen(body: Any) -> int:
    return sum(REPAIR_MARK in text for text in texts(body))


GOOD = Answer(VALID)


def bad_then_good(*bad: Behaviour, good: Behaviour = GOOD) -> Callable[..., Behaviour]:
    """Answer ``bad[n]`` to a request that carries n repair turns; ``good`` once past them."""

    def choose(path: str, body: Any) -> Behaviour:
        n = repairs_seen(body)
        return bad[n] if n < len(bad) else good

    return choose


async def route(server: Any, *, schema: Any = SCHEMA, **fields: Any) -> router_pb2.RouteResponse:
    response: router_pb2.RouteResponse = await server.route(
        "nginx is down. What now?", schema=json.dumps(schema), **fields
    )
    return response


def outcomes(
    reply: router_pb2.RouteResponse | router_pb2.RouteFailure,
) -> list[tuple[str, int, int]]:
    return [(a.model, a.repair, a.outcome) for a in reply.attempts]


async def test_invalid_json_is_repaired_by_the_same_model_before_the_cloud(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.choose = bad_then_good(Answer(NOT_JSON))
    server = await serve([ollama(local, repair_attempts=1), openai(cloud)])
    reply = await route(server)
    assert reply.model_used == LOCAL
    assert json_format.MessageToDict(reply.content) == {"action": "restart", "confidence": 0.9}
    assert outcomes(reply) == [(LOCAL, 0, INVALID), (LOCAL, 1, SUCCESS)]
    first, second = reply.attempts
    assert first.reason_category == router_pb2.REASON_CATEGORY_INVALID_JSON
    assert first.reason.startswith("answer is not JSON")
    assert second.reason == "" and second.usage.total_tokens > 0
    assert cloud.chat_requests() == []
    # The repair request: the conversation, the model's own answer, then what was wrong.
    asked, repair = local.chat_requests()
    messages = repair.body["messages"]
    assert messages[: len(asked.body["messages"])] == asked.body["messages"]
    assert messages[-2] == {"role": "assistant", "content": NOT_JSON}
    assert messages[-1]["role"] == "user"
    assert f"{REPAIR_MARK} answer is not JSON" in messages[-1]["content"]
    assert repair.body["format"] == SCHEMA  # still asked with the schema


async def test_a_schema_mismatch_is_repaired_with_the_path_qualified_error(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.choose = bad_then_good(Answer(OUT_OF_RANGE))
    server = await serve([ollama(local, repair_attempts=1), openai(cloud)])
    reply = await route(server)
    assert outcomes(reply) == [(LOCAL, 0, INVALID), (LOCAL, 1, SUCCESS)]
    assert reply.attempts[0].reason_category == router_pb2.REASON_CATEGORY_SCHEMA_MISMATCH
    _, repair = local.chat_requests()
    error = repair.body["messages"][-1]["content"]
    assert "at $.confidence: 1.5 is greater than the maximum of 1" in error


async def test_the_chain_moves_on_when_the_repairs_are_spent(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.default = Answer(OUT_OF_RANGE)  # never learns
    cloud.default = Answer(VALID)
    server = await serve([ollama(local, repair_attempts=2), openai(cloud)])
    reply = await route(server)
    assert reply.model_used == CLOUD
    assert outcomes(reply) == [
        (LOCAL, 0, INVALID),
        (LOCAL, 1, INVALID),
        (LOCAL, 2, INVALID),
        (CLOUD, 0, SUCCESS),
    ]
    assert [repairs_seen(r.body) for r in local.chat_requests()] == [0, 1, 2]
    # The cloud is asked the caller's question, not the local model's repair conversation.
    [asked] = cloud.chat_requests()
    assert REPAIR_MARK not in json.dumps(asked.body)


async def test_without_a_repair_budget_the_chain_moves_on_at_once(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.choose = bad_then_good(Answer(NOT_JSON))
    cloud.default = Answer(VALID)
    server = await serve([ollama(local, repair_attempts=0), openai(cloud)])
    reply = await route(server)
    assert outcomes(reply) == [(LOCAL, 0, INVALID), (CLOUD, 0, SUCCESS)]
    assert len(local.chat_requests()) == 1


@pytest.mark.parametrize(
    ("behaviour", "category"),
    [
        (Answer("I cannot help with that."), router_pb2.REASON_CATEGORY_REFUSAL),
        (HttpError(500), router_pb2.REASON_CATEGORY_PROVIDER_ERROR),
        (HttpError(503), router_pb2.REASON_CATEGORY_PROVIDER_ERROR),
    ],
    ids=["refusal", "http-500", "http-503"],
)
async def test_refusals_and_provider_errors_are_not_repaired(
    serve: Serve, upstream: Callable[[], FakeUpstream], behaviour: Behaviour, category: int
) -> None:
    local, cloud = upstream(), upstream()
    local.choose = bad_then_good(behaviour)
    cloud.default = Answer(VALID)
    server = await serve([ollama(local, repair_attempts=3), openai(cloud)])
    reply = await route(server)
    assert outcomes(reply) == [(LOCAL, 0, REJECTED), (CLOUD, 0, SUCCESS)]
    assert reply.attempts[0].reason_category == category
    assert len(local.chat_requests()) == 1


async def test_an_answer_cut_at_the_token_limit_is_not_repaired(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """Asked again with the same token limit, it would be cut again."""
    local, cloud = upstream(), upstream()
    cut = {
        "model": "qwen2.5:7b",
        "message": {"role": "assistant", "content": '{"action": "restart", "confidence": 0.99999'},
        "done": True,
        "done_reason": "length",  # Ollama: num_predict reached
        "prompt_eval_count": 30,
        "eval_count": 256,
    }
    local.choose = bad_then_good(HttpError(200, body=cut))
    cloud.default = Answer(VALID)
    server = await serve([ollama(local, repair_attempts=2), openai(cloud)])
    reply = await route(server)
    assert outcomes(reply) == [(LOCAL, 0, INVALID), (CLOUD, 0, SUCCESS)]
    assert reply.attempts[0].reason.endswith("(cut at the token limit)")
    assert len(local.chat_requests()) == 1


async def test_a_safety_refusal_is_not_repaired(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    first, second = upstream(), upstream()
    first.default = SafetyRefusal()  # OpenAI: finish_reason content_filter
    second.default = Answer(VALID)
    server = await serve([openai(first, repair_attempts=3), ollama(second)])
    reply = await route(server)
    assert [a.reason_category for a in reply.attempts] == [
        router_pb2.REASON_CATEGORY_SAFETY_REFUSAL,
        router_pb2.REASON_CATEGORY_UNSPECIFIED,
    ]
    assert len(first.chat_requests()) == 1


async def test_a_repair_runs_within_the_callers_deadline(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.choose = bad_then_good(Answer(NOT_JSON), good=Hang())
    server = await serve([ollama(local, timeout=30, repair_attempts=1), openai(cloud)])
    request = router_pb2.RouteRequest(
        messages=[router_pb2.Message(role="user", content="What now?")], schema=json.dumps(SCHEMA)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await server.stub.Route(request, timeout=1.5)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(local.chat_requests()) == 2  # the repair was started, and held to the deadline
    assert cloud.chat_requests() == []


async def test_the_python_client_reads_the_repair_index(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local = upstream()
    local.choose = bad_then_good(Answer(OUT_OF_RANGE))
    server = await serve([ollama(local, repair_attempts=1)])
    result = await server.client.route([{"role": "user", "content": "What now?"}], schema=SCHEMA)
    assert [(a.outcome, a.repair) for a in result.attempts] == [("invalid", 0), ("success", 1)]
    assert result.content == {"action": "restart", "confidence": 0.9}


async def test_repairs_are_counted_in_snapshots_and_events(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local = upstream()
    local.choose = bad_then_good(Answer(OUT_OF_RANGE))
    server = await serve([ollama(local, repair_attempts=1)])
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    await stream.read()  # the first snapshot
    await route(server)
    event = (await stream.read()).event
    assert [a.repair for a in event.attempts] == [0, 1]
    stream.cancel()
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    snapshot = (await stream.read()).snapshot
    stream.cancel()
    [model] = snapshot.models
    assert (model.success, model.fallback, model.repairs, model.repair_successes) == (1, 1, 1, 1)


ID_SCHEMA = {
    "type": "object",
    "required": ["id"],
    # A "pattern" makes the schema costly: its answers are judged in a validation worker.
    "properties": {"id": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"}},
}


async def test_an_answer_judged_in_a_validation_worker_is_repaired_with_its_error(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.choose = bad_then_good(Answer('{"id": "Web 1"}'), good=Answer('{"id": "web-1"}'))
    server = await serve([ollama(local, repair_attempts=1), openai(cloud)])
    reply = await route(server, schema=ID_SCHEMA)
    assert outcomes(reply) == [(LOCAL, 0, INVALID), (LOCAL, 1, SUCCESS)]
    assert json_format.MessageToDict(reply.content) == {"id": "web-1"}
    first = reply.attempts[0]
    assert first.reason_category == router_pb2.REASON_CATEGORY_SCHEMA_MISMATCH
    _, repair = local.chat_requests()
    assert "at $.id: 'Web 1' does not match" in repair.body["messages"][-1]["content"]
    assert cloud.chat_requests() == []


async def test_an_answer_that_could_not_be_judged_in_time_is_not_repaired(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """Out of the validation budget (a backtracking pattern) the verdict is VALIDATION_TIMEOUT:
    asking again would spend the budget again, so the chain moves on at once."""
    local, cloud = upstream(), upstream()
    local.default = Answer(json.dumps({"s": "a" * 29 + "!"}))
    cloud.default = Answer('{"s": "aaa"}')
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    server = await serve(
        [ollama(local, repair_attempts=2), openai(cloud)],
        validation=ValidationPolicy(answer_budget_ms=500),
    )
    reply = await route(server, schema=schema)
    assert outcomes(reply) == [(LOCAL, 0, INVALID), (CLOUD, 0, SUCCESS)]
    assert reply.attempts[0].reason_category == router_pb2.REASON_CATEGORY_VALIDATION_TIMEOUT
    assert len(local.chat_requests()) == 1
