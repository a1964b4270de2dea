"""The Redis payload is a versioned, documented schema: the seed's fields with the seed's
types, and the event exactly as the proto has it (``event``), which protobuf's own JSON
parser reads into ``llm_router.v1.RouteEvent``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis.asyncio as aioredis
from google.protobuf import json_format

from llm_router.v1 import router_pb2
from llm_router_server.breaker.rules import State, Transition
from llm_router_server.config import MetricsConfig
from llm_router_server.metrics.proto_json import circuit_change
from llm_router_server.metrics.redis_codec import (
    METRICS_CHANNEL,
    SCHEMA_VERSION,
    event_from_payload,
    event_payload,
)
from llm_router_server.service.convert import circuit_change_to_proto, event_to_proto
from llm_router_server.types import Attempt, Category, Outcome, RouteEvent, RouteStatus, Usage
from tests.support.server import Serve, anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream, HttpError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "route-event.schema.json").read_text("utf-8"))

EVENT = RouteEvent(
    timestamp=1718000000.123456,
    status=RouteStatus.OK,
    chain="default",
    context="supervisor.reconcile",
    model_used="anthropic/claude-haiku-4-5-20251001",
    latency_ms=634.125,
    attempts=(
        Attempt("ollama_chat/qwen2.5:7b", Outcome.REJECTED, Category.TIMEOUT, "no answer", 8000.5),
        Attempt(
            "anthropic/claude-haiku-4-5-20251001",
            Outcome.SUCCESS,
            Category.NONE,
            "",
            633.25,
            Usage(11, 4, 15),
        ),
    ),
    metrics_snapshot={"ollama_chat/qwen2.5:7b": {"success": 0, "fallback": 1, "error": 0}},
    event_id="1718000000123-0",
    replica_id="router-a",
)
BARE = RouteEvent(
    timestamp=1718000001.0,
    status=RouteStatus.ALL_FAILED,
    chain="cloud",
    context="",
    model_used="none",
    latency_ms=0.5,
    attempts=(Attempt("m", Outcome.SKIPPED, Category.CIRCUIT_OPEN, "open", 0.0),),
    metrics_snapshot={},
)


@pytest.mark.parametrize("event", [EVENT, BARE], ids=["answered", "failed"])
def test_the_payload_follows_its_published_schema(event: RouteEvent) -> None:
    payload = json.loads(json.dumps(event_payload(event)))
    jsonschema.validate(payload, SCHEMA)
    assert payload["schema_version"] == SCHEMA_VERSION == 2


@pytest.mark.parametrize("event", [EVENT, BARE], ids=["answered", "failed"])
def test_the_event_field_is_the_proto_route_event(event: RouteEvent) -> None:
    """protobuf's JSON parser reads ``event`` into exactly what the servicer sends."""
    payload = json.loads(json.dumps(event_payload(event)))
    parsed = json_format.ParseDict(payload["event"], router_pb2.RouteEvent())
    assert parsed == event_to_proto(event)


def test_the_seeds_fields_keep_the_seeds_names_and_types() -> None:
    payload = event_payload(EVENT)
    assert payload["latency_ms"] == 634 and isinstance(payload["latency_ms"], int)
    assert [a["latency_ms"] for a in payload["attempts"]] == [8000, 633]
    assert payload["attempts"][1]["reason"] is None
    assert payload["model_used"] == EVENT.model_used
    assert payload["timestamp"] == EVENT.timestamp
    # ... while the proto's field has the precise value.
    assert payload["event"]["latency_ms"] == 634.125


def test_an_event_reads_back_at_full_precision_and_version_1_still_reads() -> None:
    payload = json.loads(json.dumps(event_payload(EVENT)))
    assert event_from_payload(payload) == EVENT
    version_1 = {k: v for k, v in payload.items() if k not in ("event", "schema_version")}
    old = event_from_payload(version_1)
    assert old.latency_ms == 634 and old.attempts[0].category is Category.TIMEOUT
    assert old.model_used == EVENT.model_used and old.replica_id == "router-a"


def test_a_circuit_change_for_the_page_is_the_proto_circuit_change() -> None:
    change = Transition(
        time=1718000002.5,
        model="ollama_chat/qwen2.5:7b",
        api_base="http://127.0.0.1:11434",
        old=State.CLOSED,
        new=State.OPEN,
        reason="HTTP 503",
        cool_down=30.0,
    )
    parsed = json_format.ParseDict(circuit_change(change, "router-a"), router_pb2.CircuitChange())
    assert parsed == circuit_change_to_proto(change, "router-a")


async def test_what_redis_carries_follows_the_schema(
    serve: Serve, upstream: Any, redis_server: Any
) -> None:
    local: FakeUpstream = upstream()
    cloud: FakeUpstream = upstream()
    local.default = HttpError(503)
    cloud.default = Answer("fine", prompt_tokens=5, completion_tokens=2)
    server = await serve(
        [ollama(local), anthropic(cloud)],
        metrics=MetricsConfig(redis_url=redis_server.url, replica_id="A"),
    )
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(METRICS_CHANNEL)
    await server.route(context="schema.check")
    async with asyncio.timeout(10):
        message = None
        while message is None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    await pubsub.aclose()
    ((_, fields),) = await client.xrange(f"{METRICS_CHANNEL}:events")
    await client.aclose()
    for payload in (json.loads(message["data"]), json.loads(fields["event"])):
        jsonschema.validate(payload, SCHEMA)
        event = json_format.ParseDict(payload["event"], router_pb2.RouteEvent())
        assert event.context == "schema.check" and event.replica_id == "A"
        assert [a.outcome for a in event.attempts] == [
            router_pb2.ATTEMPT_OUTCOME_REJECTED,
            router_pb2.ATTEMPT_OUTCOME_SUCCESS,
        ]
