"""The Redis publisher against a real redis-server: one round trip per batch, each batch
applied once even when Redis freezes with a batch in flight (Route calls over gRPC to a
real server, Redis stopped with SIGSTOP), the script reloaded when Redis comes back empty,
the payload's JSON exactly what ``json.dumps`` writes of the version-2 payload, and
replicas that listen to each other only while watched."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from llm_router_server.config.model import MetricsConfig
from llm_router_server.metrics.redis_bus import RedisMetricsBus
from llm_router_server.metrics.redis_codec import (
    BATCH_CHANNEL,
    COUNTS_KEY,
    SCHEMA_VERSION,
    STREAM_KEY,
    event_from_payload,
    event_json,
    event_payload,
)
from llm_router_server.types import (
    Attempt,
    Category,
    Outcome,
    RouteEvent,
    RouteStatus,
    Usage,
)
from tests.support.fixtures import Upstream
from tests.support.redis_server import RedisServer
from tests.support.server import Serve, ollama
from tests.support.upstream import Answer
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)

MODEL = "ollama_chat/qwen2.5:7b"


def event(context: str = "test", *attempts: Attempt) -> RouteEvent:
    attempts = attempts or (
        Attempt(MODEL, Outcome.SUCCESS, Category.NONE, "", 3.0, Usage(2, 1, 3)),
    )
    return RouteEvent(
        timestamp=time.time(),
        status=RouteStatus.OK,
        chain="default",
        context=context,
        model_used=MODEL,
        latency_ms=4.0,
        attempts=attempts,
        metrics_snapshot={MODEL: {"success": 1, "fallback": 0, "error": 0}},
    )


async def next_message(pubsub: Any) -> dict[str, Any]:
    """The next pub/sub message (a loop of short reads: redis-py's own read timeout would
    swallow an outer ``asyncio.timeout``)."""
    for _ in range(50):
        message = await pubsub.get_message(timeout=0.2)
        if message is not None:
            return dict(message)
    raise AssertionError("no pub/sub message within 10 s")


async def counted(url: str) -> tuple[int, int]:
    """(events in the stream, the model's success counter) as Redis holds them."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        length = await client.xlen(STREAM_KEY)
        success = await client.hget(COUNTS_KEY, f"{MODEL}|success")
    finally:
        await client.aclose()
    return int(length), int(success or 0)


async def test_a_batch_in_flight_when_redis_freezes_is_counted_once(
    serve: Serve, upstream: Upstream, redis_server: RedisServer
) -> None:
    """Redis is stopped (SIGSTOP) while Route calls keep coming over gRPC: the calls are
    answered all along, the batch in flight times out and is sent again (Redis runs every
    copy when it resumes), yet each call's event is in the stream once and counted once."""
    local = upstream()
    local.default = Answer("fine")
    metrics = MetricsConfig(redis_url=redis_server.url, replica_id="A", redis_timeout=0.3)
    server = await serve([ollama(local)], metrics=metrics)
    bus = server.app.bus
    assert isinstance(bus, RedisMetricsBus)
    process = redis_server.process
    assert process is not None
    published = 0
    for _ in range(20):
        await server.route()
        published += 1
    await eventually(lambda: bus.stats().buffered == 0 and bus.stats().connected, within=10)
    process.send_signal(signal.SIGSTOP)
    try:
        for _ in range(100):  # about 2 s frozen, calls answered all along
            reply = await server.route()
            assert reply.model_used == MODEL
            published += 1
            await asyncio.sleep(0.01)
    finally:
        process.send_signal(signal.SIGCONT)
    await eventually(lambda: bus.stats().buffered == 0 and bus.stats().connected, within=20)
    assert await counted(redis_server.url) == (published, published)
    assert bus.publisher.duplicates >= 1  # a batch was applied before it was sent again
    assert bus.stats().dropped == 0


async def test_events_go_out_in_few_round_trips_and_reach_the_batch_channel(
    redis_server: RedisServer,
) -> None:
    """Events published in one burst go out as one script call; other replicas hear them
    as one message on the batch channel, whose lines are the events with their ids."""
    listener = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe(BATCH_CHANNEL)
    bus = RedisMetricsBus(redis_server.url, replica_id="A")
    try:
        assert (await next_message(pubsub))["type"] == "subscribe"  # listening from here on
        await bus.start()
        for i in range(50):
            bus.publish(event(f"burst-{i}"))
        await eventually(lambda: bus.stats().buffered == 0)
        assert bus.publisher.batches == 1
        message = await next_message(pubsub)
        lines = message["data"].split("\n")
        contexts = [event_from_payload(json.loads(line)).context for line in lines]
        assert contexts == [f"burst-{i}" for i in range(50)]
        assert all(json.loads(line)["event_id"].count("-") == 1 for line in lines)
        assert bus.publisher.cpu_seconds > 0
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await listener.aclose()
        await bus.aclose()


async def test_redis_restarted_empty_gets_the_script_again(redis_server: RedisServer) -> None:
    """The script is run by its SHA1; a Redis that lost it (restarted) is sent it again
    and nothing is lost or counted twice."""
    bus = RedisMetricsBus(redis_server.url, replica_id="A", timeout=0.5)
    await bus.start()
    try:
        bus.publish(event())
        await eventually(lambda: bus.stats().buffered == 0)
        redis_server.kill()
        redis_server.start()
        bus.publish(event())
        bus.publish(event())
        await eventually(lambda: bus.stats().buffered == 0, within=15)
        assert await counted(redis_server.url) == (2, 2)
    finally:
        await bus.aclose()


@pytest.mark.parametrize(
    "attempts",
    [
        (),
        (
            Attempt(
                'local/"quoted"\nmodel', Outcome.REJECTED, Category.REFUSAL, "sorry \u2014 no", 7.0
            ),
            Attempt("é/模型", Outcome.SUCCESS, Category.NONE, "", 12.0, Usage(5, 6, 11)),
        ),
        (Attempt(MODEL, Outcome.SKIPPED, Category.CIRCUIT_OPEN, "open\tcircuit", 0.0),),
    ],
)
def test_the_payload_is_what_json_dumps_writes_and_reads_back(
    attempts: tuple[Attempt, ...],
) -> None:
    """The hand-written JSON is exactly what ``json.dumps`` writes of the version-2 payload
    (``event_payload``), the replica's id stamped in both places, and reads back to the
    same event, whatever the strings hold."""
    original = event('ctx "with" \\ and \u2603 \ud800', *attempts)
    text = event_json(original)
    assert text == json.dumps(event_payload(original), separators=(",", ":"))
    payload = json.loads(text)
    assert payload["schema_version"] == SCHEMA_VERSION
    assert event_from_payload(payload) == original
    assert "\n" not in text
    stamped = event_json(original, "replica-b")
    assert stamped == json.dumps(
        event_payload(replace(original, replica_id="replica-b")), separators=(",", ":")
    )
    assert json.loads(stamped)["event"]["replica_id"] == "replica-b"


async def listeners(url: str) -> int:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        [(_, n)] = await client.pubsub_numsub(BATCH_CHANNEL)
    finally:
        await client.aclose()
    return int(n)


async def test_a_replica_listens_to_the_others_only_while_someone_watches_it(
    redis_server: RedisServer,
) -> None:
    """Nobody watches: no subscription, nothing read. A watcher comes: the replica listens
    and the watcher gets another replica's events. It leaves: the replica stops listening."""
    watched = RedisMetricsBus(redis_server.url, replica_id="A")
    other = RedisMetricsBus(redis_server.url, replica_id="B")
    await watched.start()
    await other.start()
    try:
        await asyncio.sleep(0.3)
        assert await listeners(redis_server.url) == 0
        watcher = watched.subscribe()
        for _ in range(50):
            if await listeners(redis_server.url) == 1:
                break
            await asyncio.sleep(0.1)
        assert await listeners(redis_server.url) == 1
        other.publish(event("from-b"))
        got = await asyncio.wait_for(watcher.get(), 10)
        assert isinstance(got, RouteEvent)
        assert (got.context, got.replica_id) == ("from-b", "B")
        watched.unsubscribe(watcher)
        for _ in range(50):
            if await listeners(redis_server.url) == 0:
                break
            await asyncio.sleep(0.1)
        assert await listeners(redis_server.url) == 0
    finally:
        await watched.aclose()
        await other.aclose()


def test_the_payload_carries_costs_and_repairs_as_json_dumps_writes_them() -> None:
    """Costs (known and unknown), the cost avoided, a local answer and a repair are written
    by hand exactly as ``json.dumps`` writes ``event_payload``, and read back."""
    original = replace(
        event(
            "priced",
            Attempt(MODEL, Outcome.INVALID, Category.INVALID_JSON, "not JSON", 5.0, cost_usd=0.0),
            Attempt(MODEL, Outcome.SUCCESS, Category.NONE, "", 6.0, repair=1, cost_usd=0.0),
        ),
        cost_avoided_usd=0.001234,
        local_answer=True,
    )
    unknown = replace(
        event("unknown", Attempt("cloud", Outcome.SUCCESS, Category.NONE, "", 9.0)),
        cost_avoided_usd=None,
    )
    priced = event("paid", Attempt("cloud", Outcome.SUCCESS, Category.NONE, "", 9.0, cost_usd=0.25))
    for one in (original, unknown, priced):
        text = event_json(one, "A")
        assert text == json.dumps(
            event_payload(replace(one, replica_id="A")), separators=(",", ":")
        )
        assert event_from_payload(json.loads(text)) == replace(one, replica_id="A")
    message = json.loads(event_json(original))["event"]
    assert (message["local_answer"], message["cost_avoided_usd"]) == (True, 0.001234)
    assert [a["repair"] for a in message["attempts"]] == [0, 1]
    assert "cost_usd" not in json.loads(event_json(unknown))["event"]
    assert json.loads(event_json(priced))["event"]["cost_usd"] == 0.25
