"""Issue 10, item 3: an answer never crashes the call; it is accepted and deliverable, or
rejected with a reason while the next model is tried, and the event says what the caller saw.

Chain [main, normal]; ``main`` answers the hostile text, ``normal`` a valid one.
"""

from __future__ import annotations

import json

import grpc
import pytest

from llm_router import AsyncRouterClient
from llm_router.v1 import router_pb2
from llm_router_server.routing.validation.offload import ValidationPolicy
from llm_router_server.types import Category, Outcome, RouteStatus
from tests.hostile.conftest import StartHostile


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + '"x"' + "}" * depth


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        pytest.param("9" * 5000, "4300 digits", id="5000-digit-integer"),
        pytest.param("[" * 100_000 + "]" * 100_000, "nests too deep to parse", id="deep-100000"),
        pytest.param("[" * 150 + "]" * 150, "nests deeper than 32 levels", id="deep-150"),
        pytest.param(nested_objects(33), "nests deeper than 32 levels", id="33-objects"),
        pytest.param('"\\ud800"', "lone surrogate (U+D800)", id="lone-surrogate-escape"),
        pytest.param('{"\\udfff": 1}', "lone surrogate (U+DFFF)", id="lone-surrogate-key"),
        pytest.param("9" * 400, "out of range of a double", id="400-digit-integer"),
        pytest.param("1e400", "out of range of a double", id="1e400"),
        pytest.param('{"x": NaN}', "NaN is not a JSON number", id="NaN"),
        pytest.param("-Infinity", "-Infinity is not a JSON number", id="Infinity"),
    ],
)
async def test_an_undeliverable_json_answer_falls_through_to_the_next_model(
    hostile: StartHostile, answer: str, why: str
) -> None:
    """Before: INTERNAL (big integer, RecursionError), UNKNOWN "Message too deep" or
    UnicodeEncodeError with an OK event; the next model was never tried."""
    h = await hostile()
    outcome = await h.route("{}", answer, '{"fine": true}')
    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert outcome.reply is not None
    assert outcome.reply.model_used == "ollama_chat/normal"
    first = outcome.attempts[0]
    assert first.outcome == router_pb2.ATTEMPT_OUTCOME_INVALID
    assert first.reason_category == router_pb2.REASON_CATEGORY_INVALID_JSON
    assert why in first.reason
    [event] = outcome.events
    assert event.status is RouteStatus.OK
    assert event.model_used == "ollama_chat/normal"
    assert [(a.outcome, a.category) for a in event.attempts] == [
        (Outcome.INVALID, Category.INVALID_JSON),
        (Outcome.SUCCESS, Category.NONE),
    ]


async def test_a_free_text_answer_with_a_lone_surrogate_falls_through(
    hostile: StartHostile,
) -> None:
    """Before: UNKNOWN UnicodeEncodeError, with an OK event."""
    h = await hostile()
    outcome = await h.route("", "bad \ud800 text", "fine text")
    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert outcome.reply is not None
    assert outcome.reply.content.string_value == "fine text"
    first = outcome.attempts[0]
    assert first.reason_category == router_pb2.REASON_CATEGORY_PROVIDER_ERROR
    assert "lone surrogate (U+D800) at index 4" in first.reason
    assert [e.status for e in outcome.events] == [RouteStatus.OK]


async def test_when_every_answer_is_undeliverable_the_status_and_event_agree(
    hostile: StartHostile,
) -> None:
    h = await hostile()
    outcome = await h.route("{}", "[" * 150 + "]" * 150, '"\\ud800"')
    assert outcome.code is grpc.StatusCode.UNAVAILABLE
    assert [a.reason_category for a in outcome.attempts] == [
        router_pb2.REASON_CATEGORY_INVALID_JSON
    ] * 2
    assert [e.status for e in outcome.events] == [RouteStatus.ALL_FAILED]


async def test_content_32_objects_deep_reaches_a_python_client(hostile: StartHostile) -> None:
    """The deepest accepted content decodes in a client (protobuf's limit is 100 messages)."""
    h = await hostile()
    h.answers.update({"main": nested_objects(32)})
    client = AsyncRouterClient(h.running.target)
    try:
        result = await client.route([{"role": "user", "content": "go"}], schema="{}", timeout=30)
    finally:
        await client.close()
    assert result.model_used == "ollama_chat/main"
    assert json.dumps(result.content, separators=(",", ":")) == nested_objects(32)


async def test_a_large_answer_is_judged_in_a_worker_and_delivered(hostile: StartHostile) -> None:
    h = await hostile(validation=ValidationPolicy(answer_budget_ms=30_000))
    items = [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(3000)]
    schema = {"type": "array", "items": {"type": "object", "required": ["id"]}}
    outcome = await h.route(schema, json.dumps(items))
    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert outcome.reply is not None
    assert outcome.reply.model_used == "ollama_chat/main"
    assert len(outcome.reply.content.list_value.values) == 3000
