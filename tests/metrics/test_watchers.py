"""Watchers share one ring of events and one budget for what is sent to them: a watcher
alone gets every event, many watchers together cost a bounded number of messages per
event, one that waited for its turn skips to the newest and is told what it skipped, and
every event goes out as the same bytes to every stream."""

from __future__ import annotations

import asyncio
import time

import pytest

from llm_router.v1 import router_pb2
from llm_router_server.breaker.rules import State, Transition
from llm_router_server.metrics.memory import InMemoryMetricsBus
from llm_router_server.metrics.watch_schedule import (
    BATCH_EVENT_COST,
    BATCH_MESSAGES_PER_EVENT,
    BATCH_MESSAGES_PER_SECOND,
    BURST,
    MESSAGES_PER_EVENT,
    MESSAGES_PER_SECOND,
)
from llm_router_server.metrics.watchers import Subscription, event_filter
from llm_router_server.service.servicer import RouterServicer, router_handlers
from llm_router_server.types import Attempt, Category, Outcome, RouteEvent, RouteStatus
from tests.support.fixtures import Upstream
from tests.support.server import Serve, ollama
from tests.support.upstream import Answer
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def event(context: str = "c", chain: str = "default") -> RouteEvent:
    attempt = Attempt("local", Outcome.SUCCESS, Category.NONE, "", 1.0)
    return RouteEvent(time.time(), RouteStatus.OK, chain, context, "local", 1.0, (attempt,), {})


async def drain(subscription: Subscription, within: float = 0.2) -> list[RouteEvent]:
    """What a watcher reads until nothing comes for ``within`` seconds."""
    got: list[RouteEvent] = []
    while True:
        try:
            notice = await asyncio.wait_for(subscription.get(), within)
        except TimeoutError:
            return got
        assert isinstance(notice, RouteEvent)
        got.append(notice)


async def test_a_watcher_alone_gets_every_event_in_order() -> None:
    bus = InMemoryMetricsBus()
    watcher = bus.subscribe(maxsize=5000)
    for i in range(3000):
        bus.publish(event(f"e{i}"))
    got = await drain(watcher)
    assert [e.context for e in got] == [f"e{i}" for i in range(3000)]
    assert watcher.take_missed() == 0


async def test_many_watchers_share_a_budget_and_account_for_every_event() -> None:
    """300 watchers, events coming faster than the budget allows: the messages sent stay
    within the budget, and for each watcher what it got plus what it was told it missed is
    every event, the newest always among what it got."""
    bus = InMemoryMetricsBus()
    watchers = [bus.subscribe(maxsize=1000) for _ in range(300)]
    received: list[list[RouteEvent]] = [[] for _ in watchers]

    async def read(i: int) -> None:
        while True:
            notice = await watchers[i].get()
            assert isinstance(notice, RouteEvent)
            received[i].append(notice)

    readers = [asyncio.create_task(read(i)) for i in range(len(watchers))]
    started = asyncio.get_running_loop().time()
    total = 2000
    for i in range(total):
        bus.publish(event(f"e{i}"))
        if i % 50 == 49:
            await asyncio.sleep(0.005)
    newest = f"e{total - 1}"
    await eventually(lambda: all(r and r[-1].context == newest for r in received), within=30)
    elapsed = asyncio.get_running_loop().time() - started
    for task in readers:
        task.cancel()
    sent = sum(len(r) for r in received)
    assert sent <= BURST + MESSAGES_PER_EVENT * total + MESSAGES_PER_SECOND * elapsed
    assert sent < len(watchers) * total / 10  # far fewer than one per watcher per event
    for watcher, got in zip(watchers, received, strict=True):
        assert len(got) + watcher.missed == total
        order = [int(e.context[1:]) for e in got]
        assert order == sorted(set(order))


async def test_batched_watchers_share_a_budget_of_their_own_and_account_for_every_event() -> None:
    """300 watchers taking events in batches: what their messages and events cost stays
    within the batch budget, each got the newest event, and what each got plus what it was
    told it missed is every event, in order."""
    bus = InMemoryMetricsBus()
    watchers = [bus.subscribe(maxsize=1000, batched=True) for _ in range(300)]
    received: list[list[RouteEvent]] = [[] for _ in watchers]
    messages = [0] * len(watchers)

    async def read(i: int) -> None:
        while True:
            batch = await watchers[i].get_batch(1000)
            assert isinstance(batch, list)
            received[i] += batch
            messages[i] += 1

    readers = [asyncio.create_task(read(i)) for i in range(len(watchers))]
    started = asyncio.get_running_loop().time()
    total = 2000
    for i in range(total):
        bus.publish(event(f"e{i}"))
        if i % 50 == 49:
            await asyncio.sleep(0.005)
    newest = f"e{total - 1}"
    await eventually(lambda: all(r and r[-1].context == newest for r in received), within=30)
    elapsed = asyncio.get_running_loop().time() - started
    for task in readers:
        task.cancel()
    spent = sum(messages) + BATCH_EVENT_COST * sum(len(r) for r in received)
    budget = BURST + BATCH_MESSAGES_PER_EVENT * total + BATCH_MESSAGES_PER_SECOND * elapsed
    assert spent <= budget + 1 + BATCH_EVENT_COST * 1000  # the last batch may overdraw
    for watcher, got in zip(watchers, received, strict=True):
        assert len(got) + watcher.missed == total
        order = [int(e.context[1:]) for e in got]
        assert order == sorted(set(order))


async def test_circuit_changes_are_never_skipped() -> None:
    bus = InMemoryMetricsBus()
    watcher = bus.subscribe(maxsize=10)
    change = Transition("local", "", State.CLOSED, State.OPEN, "3 failures")
    for i in range(100):
        bus.publish(event(f"e{i}"))
    bus.notice(change)
    assert await watcher.get() == change
    got = await drain(watcher)
    assert [e.context for e in got] == [f"e{i}" for i in range(90, 100)]
    assert watcher.take_missed() == 90


async def test_a_filtered_watcher_is_told_only_of_matching_events_it_missed() -> None:
    bus = InMemoryMetricsBus()
    watcher = bus.subscribe(maxsize=10, accept=event_filter(contexts=["nightly"]))
    for i in range(15):
        bus.publish(event("nightly" if i % 3 == 0 else "other"))  # 5 match: 0, 3, ..., 12
    for _ in range(10):
        bus.publish(event("other"))  # the oldest 15 fall more than 10 behind
    assert await drain(watcher) == []
    assert watcher.take_missed() == 5


def test_every_method_of_the_service_is_registered() -> None:
    """``router_handlers`` replaces the generated registration: it must not miss an RPC."""
    methods = router_pb2.DESCRIPTOR.services_by_name["Router"].methods_by_name
    handlers = router_handlers(RouterServicer.__new__(RouterServicer))
    assert set(handlers) == set(methods)
    for name, method in methods.items():
        assert handlers[name].response_streaming == method.server_streaming
        assert handlers[name].request_streaming == method.client_streaming


async def test_every_stream_gets_the_same_bytes_for_an_event(
    serve: Serve, upstream: Upstream
) -> None:
    """The event's message is serialized once: three watchers read identical bytes, which
    are the event (and, for one that missed events, the same bytes plus the count)."""
    up = upstream()
    up.default = Answer("fine")
    server = await serve([ollama(up)])
    raw = server.channel.unary_stream(
        "/llm_router.v1.Router/WatchMetrics",
        request_serializer=router_pb2.WatchMetricsRequest.SerializeToString,
        response_deserializer=None,  # bytes as sent
    )
    streams = [raw(router_pb2.WatchMetricsRequest()) for _ in range(3)]
    for stream in streams:
        first = router_pb2.WatchMetricsResponse.FromString(await stream.read())
        assert first.WhichOneof("kind") == "snapshot"
    await server.route(context="shared")
    messages = [await asyncio.wait_for(stream.read(), 10) for stream in streams]
    assert messages[0] == messages[1] == messages[2]
    decoded = router_pb2.WatchMetricsResponse.FromString(messages[0])
    assert (decoded.event.context, decoded.missed_events) == ("shared", 0)
    for stream in streams:
        stream.cancel()
