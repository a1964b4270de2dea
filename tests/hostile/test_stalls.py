"""Issue 10, item 1: no schema or answer can hold the event loop.

Each reproduction runs while a health Check and a Route on another chain keep calling:
every one of their replies must come within 100 ms. A validation that runs out of its
budget rejects the answer (VALIDATION_TIMEOUT) and the chain goes on; a schema whose check
runs out of budget is INVALID_ARGUMENT before any model is called.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc
import pytest

from llm_router.v1 import router_pb2
from llm_router_server.routing.validation.offload import ValidationPolicy
from llm_router_server.types import RouteStatus
from tests.hostile.conftest import BYSTANDER_LIMIT_S, BYSTANDER_WORST_S, Outcome, StartHostile
from tests.support.waiting import eventually

BUDGET = ValidationPolicy(answer_budget_ms=500)
REDOS = "^(a+)+$"
EVIL = "a" * 29 + "!"


def fan_out(levels: int) -> dict[str, Any]:
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "object"}
    return {"$ref": "#/$defs/d0", "$defs": defs}


def big_schema(chars: int, salt: str) -> dict[str, Any]:
    """An object schema of about ``chars`` characters, distinct for each ``salt``."""
    entry = len(json.dumps({f"p0000_{salt}": {"type": "string", "description": f"f0000 {salt}"}}))
    props = {
        f"p{i:04}_{salt}": {"type": "string", "description": f"f{i:04} {salt}"}
        for i in range(chars // entry)
    }
    return {"type": "object", "properties": props}


def assert_bystanders_answered(outcome: Outcome) -> None:
    assert outcome.health_median < BYSTANDER_LIMIT_S, outcome.health_median
    assert outcome.other_median < BYSTANDER_LIMIT_S, outcome.other_median
    assert outcome.health_worst < BYSTANDER_WORST_S, outcome.health_worst
    assert outcome.other_worst < BYSTANDER_WORST_S, outcome.other_worst


def assert_fell_through_for_budget(outcome: Outcome) -> None:
    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert outcome.reply is not None
    assert outcome.reply.model_used == "ollama_chat/normal"
    first = outcome.attempts[0]
    assert first.model == "ollama_chat/main"
    assert first.outcome == router_pb2.ATTEMPT_OUTCOME_INVALID
    assert first.reason_category == router_pb2.REASON_CATEGORY_VALIDATION_TIMEOUT
    assert "took longer than 500 ms (validation.answer_budget_ms)" in first.reason
    assert [e.status for e in outcome.events] == [RouteStatus.OK]


@pytest.mark.parametrize(
    ("schema", "main", "normal"),
    [
        pytest.param(
            {"type": "object", "properties": {"s": {"type": "string", "pattern": REDOS}}},
            {"s": EVIL},
            {"s": "aaa"},
            id="pattern",
        ),
        pytest.param(
            {"type": "object", "patternProperties": {REDOS: {}}},
            {EVIL: 1},
            {"a": 1},
            id="patternProperties",
        ),
        pytest.param(
            {"type": "object", "propertyNames": {"pattern": REDOS}},
            {EVIL: 1},
            {"a": 1},
            id="propertyNames",
        ),
    ],
)
async def test_a_backtracking_regex_is_cut_off_by_the_budget_and_the_next_model_answers(
    hostile: StartHostile, schema: Any, main: Any, normal: Any
) -> None:
    """Before: the loop was frozen 17.8 s (29 a's), doubling per character."""
    h = await hostile(validation=BUDGET)
    outcome = await h.route(schema, json.dumps(main), json.dumps(normal))
    assert_fell_through_for_budget(outcome)
    assert_bystanders_answered(outcome)
    assert outcome.seconds < 5


async def test_quadratic_unique_items_is_cut_off_by_the_budget(hostile: StartHostile) -> None:
    """Before: 5,000 distinct objects held the loop 20.8 s."""
    h = await hostile(validation=BUDGET)
    schema = {"type": "array", "uniqueItems": True, "items": {"type": "object"}}
    outcome = await h.route(schema, json.dumps([{"i": i} for i in range(5000)]), "[]")
    assert_fell_through_for_budget(outcome)
    assert_bystanders_answered(outcome)


async def test_a_ref_fan_out_is_invalid_argument_before_any_model(hostile: StartHostile) -> None:
    """Before: 20 levels of ``allOf: [$ref, $ref]`` held the loop 27.8 s for any answer."""
    h = await hostile()
    outcome = await h.route(fan_out(20))
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "$ref fan-out" in outcome.details
    assert h.chat_models() == ["other"] * len(h.chat_models())  # only the bystander's
    assert_bystanders_answered(outcome)


async def test_a_moderate_ref_fan_out_is_cut_off_by_the_budget(hostile: StartHostile) -> None:
    """Under the static bound, the budget still ends an expensive validation."""
    h = await hostile(validation=ValidationPolicy(answer_budget_ms=100))
    outcome = await h.route(fan_out(14), "{}", "{}")
    assert outcome.code is grpc.StatusCode.UNAVAILABLE  # the normal model's answer too
    assert [a.reason_category for a in outcome.attempts] == [
        router_pb2.REASON_CATEGORY_VALIDATION_TIMEOUT
    ] * 2
    assert_bystanders_answered(outcome)
    assert [e.status for e in outcome.events] == [RouteStatus.ALL_FAILED]


async def test_a_large_new_schema_is_checked_off_the_loop(hostile: StartHostile) -> None:
    """Before: a distinct 100 KB schema cost 0.4-0.5 s of loop time to check and compile."""
    h = await hostile(validation=ValidationPolicy(schema_budget_ms=30_000))
    schema = big_schema(99_000, str(time.time_ns()))
    assert 90_000 < len(json.dumps(schema)) < 100_000
    outcome = await h.route(schema, "{}")
    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert_bystanders_answered(outcome)


async def test_a_schema_check_out_of_budget_is_invalid_argument(hostile: StartHostile) -> None:
    h = await hostile(validation=ValidationPolicy(schema_budget_ms=5))
    outcome = await h.route(big_schema(99_000, str(time.time_ns())))
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "schema check took longer than 5 ms (validation.schema_budget_ms)" in outcome.details
    assert "main" not in h.chat_models()
    assert_bystanders_answered(outcome)


async def test_the_schema_cache_is_bounded_by_bytes(hostile: StartHostile) -> None:
    """Before: 256 cached 100 KB schemas held about 200 MB, whatever their size."""
    h = await hostile(validation=ValidationPolicy(schema_cache_mb=2, schema_budget_ms=30_000))
    cache = h.running.app.router.validation.schemas
    for k in range(6):
        outcome = await h.route(big_schema(60_000, f"{k}-{time.time_ns()}"), "{}")
        assert outcome.code is grpc.StatusCode.OK
    assert cache.size <= cache.capacity == 2 * 1024 * 1024
    assert 1 <= len(cache) < 6


async def test_healthy_models_keep_their_circuits_while_answers_are_judged(
    hostile: StartHostile,
) -> None:
    """Before: during a freeze, healthy models' in-flight calls were counted as timeouts and
    their circuits opened."""
    h = await hostile(validation=BUDGET)
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": REDOS}}}
    slow = [h.route(schema, json.dumps({"s": EVIL}), json.dumps({"s": "a"})) for _ in range(3)]
    outcomes = await asyncio.gather(*slow)
    assert all(o.code is grpc.StatusCode.OK for o in outcomes)
    circuits = await h.running.app.router.breaker.states(
        spec for chain in h.running.app.router.chains.values() for spec in chain.models
    )
    assert {c.state.value for c in circuits.values()} == {"closed"}


async def test_shutdown_is_prompt_while_a_hostile_answer_is_judged(hostile: StartHostile) -> None:
    """Before: SIGTERM with a 2 s grace exited after 25 s."""
    h = await hostile(validation=ValidationPolicy(answer_budget_ms=30_000))
    h.answers.update({"main": json.dumps({"s": EVIL + "aaaa"}), "normal": "{}"})
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": REDOS}}}
    request = router_pb2.RouteRequest(
        messages=[router_pb2.Message(role="user", content="go")], schema=json.dumps(schema)
    )
    call = asyncio.ensure_future(h.running.stub.Route(request, timeout=60))
    await eventually(lambda: "main" in h.chat_models(), 10)
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    await h.running.app.stop(0.5)
    assert time.perf_counter() - started < 2
    with pytest.raises(grpc.aio.AioRpcError):
        await call
