"""``watch()``: WatchMetrics as typed messages (snapshot, route events, circuit changes),
in both clients, resuming where it left off when its server goes away and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TypeVar

import pytest

from llm_router import (
    AsyncRouterClient,
    CircuitChange,
    ConnectionFailedError,
    MetricsSnapshot,
    RouteEvent,
    RouterClient,
    WatchMessage,
)
from llm_router.v1 import router_pb2
from llm_router.watch import messages_from_proto
from llm_router_server.config import BreakerPolicy, Config, MetricsConfig, ServerConfig
from tests.support.apps import StartApp, chain
from tests.support.net import free_port
from tests.support.redis_server import RedisServer
from tests.support.server import anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream, HttpError

pytestmark = pytest.mark.timeout(90)
LOCAL, CLAUDE = "ollama_chat/qwen2.5:7b", "anthropic/claude-haiku-4-5-20251001"


T = TypeVar("T")


async def next_of(kind: type[T], messages: AsyncIterator[WatchMessage]) -> T:
    """The next message of ``kind`` (skipping periodic snapshots and others)."""
    async for message in messages:
        if isinstance(message, kind):
            return message
    raise AssertionError(f"the stream ended before a {kind.__name__}")


async def test_async_watch_yields_a_snapshot_then_typed_events_and_circuit_changes(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.default = HttpError(500)
    cloud.default = Answer("from the cloud")
    config = Config(
        chains=chain(ollama(local), anthropic(cloud)),
        breaker=BreakerPolicy(failure_threshold=1, cool_down_seconds=60),
    )
    _, target = await start_app(config)
    async with AsyncRouterClient(target) as client:
        messages = client.watch(contexts=["watched"])
        first = await anext(messages)
        assert isinstance(first, MetricsSnapshot)
        assert first.cluster_wide is False and first.replica_id
        await client.route([{"role": "user", "content": "hi"}], context="unwatched")
        await client.route([{"role": "user", "content": "hi"}], context="watched")
        change = await next_of(CircuitChange, messages)
        event = await next_of(RouteEvent, messages)
        await messages.aclose()
    assert (change.model, change.from_state, change.to_state) == (LOCAL, "closed", "open")
    assert change.cool_down_seconds == pytest.approx(60)
    assert event.context == "watched" and event.status == "ok"
    assert event.model_used == CLAUDE and event.event_id and event.replica_id
    assert [(a.model, a.outcome, a.reason_category) for a in event.attempts] == [
        (LOCAL, "skipped", "circuit_open"),
        (CLAUDE, "success", ""),
    ]
    assert event.usage is not None and event.usage.total_tokens > 0
    assert event.raw.event.event_id == event.event_id


async def test_blocking_watch_yields_typed_messages(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    up = upstream()
    up.default = Answer("ok")
    _, target = await start_app(Config(chains=chain(ollama(up))))
    opened = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch() -> list[WatchMessage]:
        seen: list[WatchMessage] = []
        with RouterClient(target) as client:
            for message in client.watch(interval=0):
                seen.append(message)
                loop.call_soon_threadsafe(opened.set)
                if isinstance(message, RouteEvent):
                    return seen
        return seen

    watching = asyncio.create_task(asyncio.to_thread(watch))
    await asyncio.wait_for(opened.wait(), 30)
    async with AsyncRouterClient(target) as client:
        await client.route([{"role": "user", "content": "hi"}], context="blocking")
    seen = await asyncio.wait_for(watching, 30)
    assert isinstance(seen[0], MetricsSnapshot)
    assert isinstance(seen[-1], RouteEvent) and seen[-1].context == "blocking"


async def test_a_watch_that_cannot_open_fails_at_once() -> None:
    async with AsyncRouterClient(f"127.0.0.1:{free_port()}") as client:
        with pytest.raises(ConnectionFailedError):
            await anext(client.watch())


async def test_watch_resumes_after_its_server_restarts_without_losing_or_repeating_events(
    start_app: StartApp, upstream: Callable[[], FakeUpstream], redis_server: RedisServer
) -> None:
    """Replica A serves the watcher; A stops; calls go to replica B meanwhile; A comes back
    on the same port: the watcher reconnects by itself, asks to resume after the last event
    it saw, and gets every call exactly once."""
    up = upstream()
    up.default = Answer("ok")
    port = free_port()
    base = Config(chains=chain(ollama(up)))

    def replica(name: str, listen: str = "127.0.0.1:0") -> Config:
        return replace(
            base,
            server=ServerConfig(listen=listen, grace_seconds=1),
            metrics=MetricsConfig(redis_url=redis_server.url, replica_id=name),
        )

    app_a, target_a = await start_app(replica("a", f"127.0.0.1:{port}"))
    _, target_b = await start_app(replica("b"))
    seen: list[str] = []
    async with AsyncRouterClient(target_a) as watcher, AsyncRouterClient(target_b) as other:
        messages = watcher.watch(contexts=["resume"])
        assert isinstance(await anext(messages), MetricsSnapshot)
        await watcher.route([{"role": "user", "content": "1"}], context="resume")
        seen.append((await next_of(RouteEvent, messages)).replica_id)
        reading = asyncio.create_task(collect(messages, 3, seen))
        await app_a.stop(0)
        await other.route([{"role": "user", "content": "2"}], context="resume")
        await other.route([{"role": "user", "content": "3"}], context="resume")
        await start_app(replica("a-again", f"127.0.0.1:{port}"))
        await asyncio.wait_for(reading, 60)
    assert seen == ["a", "b", "b"]


async def collect(messages: AsyncIterator[WatchMessage], total: int, seen: list[str]) -> None:
    while len(seen) < total:
        seen.append((await next_of(RouteEvent, messages)).replica_id)


async def test_watch_yields_a_batchs_events_one_by_one_in_order(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    """Events asked for in batches (a message per 300 ms) come out one ``RouteEvent`` each,
    in order, each ``.raw`` an event message of its own; ``batch=0`` sees the same."""
    up = upstream()
    up.default = Answer("ok")
    _, target = await start_app(Config(chains=chain(ollama(up))))
    async with AsyncRouterClient(target) as client:
        batched = client.watch(batch=10, batch_interval=0.3)
        plain = client.watch(batch=0)
        assert isinstance(await anext(batched), MetricsSnapshot)
        assert isinstance(await anext(plain), MetricsSnapshot)
        sent = [f"call-{i}" for i in range(12)]
        for context in sent:
            await client.route([{"role": "user", "content": "hi"}], context=context)
        for messages in (batched, plain):
            events = [await next_of(RouteEvent, messages) for _ in sent]
            assert [e.context for e in events] == sent
            assert {e.raw.WhichOneof("kind") for e in events} == {"event"}
            assert sum(e.missed_events for e in events) == 0
            await messages.aclose()


def test_a_batchs_missed_events_go_on_its_first_event() -> None:
    batch = router_pb2.WatchMetricsResponse(
        events=router_pb2.EventBatch(
            events=[router_pb2.RouteEvent(context="a"), router_pb2.RouteEvent(context="b")]
        ),
        missed_events=4,
    )
    got = messages_from_proto(batch)
    assert [(m.context, m.missed_events) for m in got if isinstance(m, RouteEvent)] == [
        ("a", 4),
        ("b", 0),
    ]
