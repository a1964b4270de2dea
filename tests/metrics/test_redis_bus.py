"""Metrics through a real redis-server: the seed's payload, replicas sharing Redis, Redis
dying and coming back, resuming watchers, stuck watchers. Routes go through real servers
(port 0, real channels) to fake providers at the wire."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from llm_router.v1 import router_pb2
from llm_router_server.config.model import MetricsConfig
from llm_router_server.metrics.redis_bus import RedisMetricsBus
from llm_router_server.metrics.redis_codec import METRICS_CHANNEL
from llm_router_server.types import Completion, ModelSpec
from tests.support.fixtures import Upstream
from tests.support.net import free_port
from tests.support.redis_server import RedisServer
from tests.support.scripted_provider import ScriptedProvider
from tests.support.server import Running, Serve, anthropic, ollama
from tests.support.upstream import Answer, HttpError
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

Stream = Any  # grpc.aio.UnaryStreamCall[WatchMetricsRequest, WatchMetricsResponse]
PROMPT = "secret prompt: the nginx password is hunter2"
ANSWER = "secret answer: restart it"


def with_redis(url: str, replica: str = "A", **metrics: Any) -> dict[str, Any]:
    return {"metrics": MetricsConfig(redis_url=url, replica_id=replica, **metrics)}


async def watch(server: Running, **request: Any) -> tuple[Stream, router_pb2.MetricsSnapshot]:
    """Open WatchMetrics and read its first message, which is a snapshot."""
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest(**request))
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.WhichOneof("kind") == "snapshot"
    return stream, first.snapshot


async def next_event(stream: Stream, within: float = 10) -> router_pb2.WatchMetricsResponse:
    """The next event message (snapshots in between are skipped)."""
    async with asyncio.timeout(within):
        while True:
            message = await stream.read()
            assert message is not grpc.aio.EOF
            if message.WhichOneof("kind") == "event":
                return message


def bus_of(server: Running) -> RedisMetricsBus:
    bus = server.app.bus
    assert isinstance(bus, RedisMetricsBus)
    return bus


async def test_channel_payload_keeps_the_seeds_fields_and_no_text(
    serve: Serve, upstream: Upstream, redis_server: RedisServer
) -> None:
    local, cloud = upstream(), upstream()
    local.script(HttpError(503))
    cloud.script(Answer(ANSWER, prompt_tokens=11, completion_tokens=4))
    server = await serve([ollama(local), anthropic(cloud)], **with_redis(redis_server.url))
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(METRICS_CHANNEL)
    await server.route(PROMPT, context="supervisor.reconcile")
    async with asyncio.timeout(10):
        message = None
        while message is None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    raw = message["data"]
    await pubsub.aclose()
    await client.aclose()
    assert "hunter2" not in raw and ANSWER not in raw
    payload = json.loads(raw)
    # The seed's fields, with the seed's types.
    assert payload["model_used"] == "anthropic/claude-haiku-4-5-20251001"
    assert isinstance(payload["latency_ms"], int)
    assert isinstance(payload["timestamp"], float)
    first, second = payload["attempts"]
    assert {"model", "outcome", "reason", "latency_ms"} <= set(first)
    assert first["outcome"] == "rejected" and "503" in first["reason"]
    assert second["outcome"] == "success" and second["reason"] is None
    assert isinstance(second["latency_ms"], int)
    assert payload["metrics_snapshot"] == {
        "anthropic/claude-haiku-4-5-20251001": {"success": 1, "fallback": 0, "error": 0},
        "ollama_chat/qwen2.5:7b": {"success": 0, "fallback": 1, "error": 0},
    }
    # What this service adds.
    assert payload["chain"] == "default"
    assert payload["context"] == "supervisor.reconcile"
    assert payload["status"] == "ok"
    assert payload["replica_id"] == "A"
    assert payload["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    assert payload["event_id"].count("-") == 1


async def test_a_watcher_on_one_replica_sees_the_other_and_a_cluster_snapshot(
    serve: Serve, upstream: Upstream, redis_server: RedisServer
) -> None:
    up = upstream(Answer("fine", prompt_tokens=3, completion_tokens=2))
    a = await serve([ollama(up)], **with_redis(redis_server.url, "replica-a"))
    b = await serve([ollama(up)], **with_redis(redis_server.url, "replica-b"))
    stream, _ = await watch(a)
    await b.route(context="on-b")
    event = (await next_event(stream)).event
    assert (event.context, event.replica_id) == ("on-b", "replica-b")
    assert event.usage.total_tokens == 5
    await a.route(context="on-a")
    assert (await next_event(stream)).event.replica_id == "replica-a"
    stream.cancel()
    stream, snapshot = await watch(b)
    stream.cancel()
    assert snapshot.cluster_wide and snapshot.replica_id == "replica-b"
    [model] = snapshot.models
    assert (model.model, model.success, model.total_tokens) == ("ollama_chat/qwen2.5:7b", 2, 10)
    assert 0 < model.latency_p50_ms <= model.latency_p95_ms


async def test_redis_killed_mid_run_routes_go_on_and_metrics_resume_when_it_returns(
    serve: Serve, upstream: Upstream, redis_server: RedisServer
) -> None:
    up = upstream(Answer("fine"))
    server = await serve([ollama(up)], **with_redis(redis_server.url, buffer_size=3))
    bus = bus_of(server)
    stream, _ = await watch(server)
    await server.route(context="before")
    assert (await next_event(stream)).event.context == "before"

    redis_server.kill()
    for i in range(5):
        reply = await server.route(context=f"down-{i}")
        assert reply.model_used == "ollama_chat/qwen2.5:7b"
    await eventually(lambda: not bus.stats().connected)
    stats = bus.stats()
    assert (stats.buffered, stats.dropped) == (3, 2)
    _, snapshot = await watch(server)
    assert not snapshot.cluster_wide  # Redis is gone: this replica's own counters
    assert snapshot.models[0].success == 6

    redis_server.start()  # same port, empty: the server is not restarted
    await eventually(lambda: bus.stats().buffered == 0 and bus.stats().connected, within=15)
    seen = [(await next_event(stream, 15)).event.context for _ in range(3)]
    assert seen == ["down-0", "down-1", "down-2"]
    await server.route(context="after")
    assert (await next_event(stream)).event.context == "after"
    stream.cancel()


async def test_redis_down_at_start_does_not_stop_the_server(
    serve: Serve, upstream: Upstream, tmp_path: Any
) -> None:
    up = upstream(Answer("fine"))
    later = RedisServer(tmp_path)
    server = await serve([ollama(up)], **with_redis(later.url))
    await server.route(context="early")
    later.start()
    try:
        await eventually(lambda: bus_of(server).stats().buffered == 0, within=15)
        stream, snapshot = await watch(server)
        assert snapshot.cluster_wide and snapshot.models[0].success == 1
        stream.cancel()
    finally:
        later.kill()


async def test_blackholed_redis_does_not_stop_routes(
    serve: Serve, upstream: Upstream, blackhole: int
) -> None:
    up = upstream(Answer("fine"))
    server = await serve(
        [ollama(up)],
        **with_redis(f"redis://127.0.0.1:{blackhole}/0", buffer_size=2, redis_timeout=0.3),
    )
    for _ in range(4):
        assert (await server.route()).model_used == "ollama_chat/qwen2.5:7b"
    stats = bus_of(server).stats()
    assert (stats.buffered, stats.dropped) == (2, 2)
    stream, snapshot = await watch(server)  # falls back to local counters
    stream.cancel()
    assert not snapshot.cluster_wide and snapshot.models[0].success == 4


async def test_a_resumed_watcher_gets_the_events_it_missed(
    serve: Serve, upstream: Upstream, redis_server: RedisServer
) -> None:
    up = upstream(Answer("fine"))
    server = await serve([ollama(up)], **with_redis(redis_server.url))
    stream, _ = await watch(server)
    await server.route(context="seen")
    last = (await next_event(stream)).event.event_id
    stream.cancel()
    await server.route(context="missed-1")
    await server.route(context="missed-2")
    stream, _ = await watch(server, resume_after_event_id=last)
    assert (await next_event(stream)).event.context == "missed-1"
    assert (await next_event(stream)).event.context == "missed-2"
    await server.route(context="live")
    assert (await next_event(stream)).event.context == "live"  # no duplicates in between
    stream.cancel()


async def test_resume_without_redis_uses_the_in_process_history(
    serve: Serve, upstream: Upstream
) -> None:
    up = upstream(Answer("fine"))
    server = await serve([ollama(up)])
    stream, _ = await watch(server)
    await server.route(context="seen")
    last = (await next_event(stream)).event.event_id
    stream.cancel()
    await server.route(context="missed")
    stream, _ = await watch(server, resume_after_event_id=last)
    assert (await next_event(stream)).event.context == "missed"
    stream.cancel()


async def test_resume_with_a_bad_id_is_invalid_argument(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream())])
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest(resume_after_event_id="x"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resume_after_event_id" in (info.value.details() or "")


async def test_resume_while_redis_is_down_is_unavailable(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream())], **with_redis(f"redis://127.0.0.1:{free_port()}"))
    stream, snapshot = await watch(server, resume_after_event_id="1-0")
    assert not snapshot.cluster_wide
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream.read()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_filters_by_chain_model_and_context(
    serve: Serve, upstream: Upstream, redis_server: RedisServer
) -> None:
    local, cloud = upstream(Answer("fine")), upstream(Answer("fine"))
    server = await serve(
        [ollama(local)], chains={"cloud": [anthropic(cloud)]}, **with_redis(redis_server.url)
    )
    by_chain, _ = await watch(server, chains=["cloud"])
    by_model, _ = await watch(server, models=["ollama_chat/qwen2.5:7b"])
    by_context, _ = await watch(server, contexts=["nightly"])
    await server.route(context="x", chain="cloud")
    await server.route(context="nightly")
    assert (await next_event(by_chain)).event.chain == "cloud"
    assert (await next_event(by_model)).event.context == "nightly"
    assert (await next_event(by_context)).event.context == "nightly"
    await server.route(context="last", chain="cloud")
    assert (await next_event(by_chain)).event.context == "last"
    for stream in (by_chain, by_model, by_context):
        stream.cancel()


async def test_a_stuck_watcher_does_not_slow_routes_and_is_told_what_it_missed(
    serve: Serve,
) -> None:
    """One watcher never reads; Routes and a second watcher that reads are unaffected; the
    stuck one learns how many events it lost from ``missed_events``."""
    provider = ScriptedProvider(default=Completion("fine"))
    server = await serve(
        [ModelSpec("local", timeout=5)],
        provider=provider,
        metrics=MetricsConfig(watcher_queue=200),
    )
    # A small HTTP/2 window (and no window growth) so the stuck client's transport fills up.
    stuck_channel = grpc.aio.insecure_channel(
        server.target, options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1)]
    )
    from llm_router.v1 import router_pb2_grpc

    stuck = router_pb2_grpc.RouterStub(stuck_channel).WatchMetrics(router_pb2.WatchMetricsRequest())
    await eventually(lambda: server.app.bus.stats().watchers == 1)
    reader, _ = await watch(server)
    received = 0

    async def read_all() -> None:
        nonlocal received
        while True:
            message = await reader.read()
            if message.WhichOneof("kind") == "event":
                received += 1
                assert message.missed_events == 0

    reading = asyncio.create_task(read_all())
    total = 1500
    for _ in range(total // 10):
        replies = await asyncio.gather(*(server.route() for _ in range(10)))
        assert all(r.model_used == "local" for r in replies)
    await eventually(lambda: received == total, within=20)
    assert server.app.bus.stats().watcher_missed > 0
    reading.cancel()
    reader.cancel()
    missed = events = 0
    async with asyncio.timeout(20):
        while events + missed < total:
            message = await stuck.read()
            missed += message.missed_events
            events += message.WhichOneof("kind") == "event"
    assert missed > 0 and events + missed == total
    stuck.cancel()
    await stuck_channel.close()
