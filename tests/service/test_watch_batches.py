"""WatchMetrics with several events per message (``max_events_per_message``), at the wire:
batched and unbatched watchers see the same events in the same order, filters apply inside
batches, a slow batched watcher is told what it missed, resuming works, and bad values are
INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from llm_router.v1 import router_pb2
from llm_router_server.config.model import MetricsConfig
from llm_router_server.types import Attempt, Category, Outcome, RouteEvent, RouteStatus
from tests.support.fixtures import Upstream
from tests.support.server import Running, Serve, ollama
from tests.support.upstream import Answer

pytestmark = pytest.mark.timeout(60)

Stream = Any


async def watch(server: Running, **request: Any) -> Stream:
    """Open WatchMetrics and read its first message, a snapshot."""
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest(**request))
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.WhichOneof("kind") == "snapshot"
    return stream


async def read_events(
    stream: Stream, count: int, within: float = 15
) -> tuple[list[str], list[router_pb2.WatchMetricsResponse]]:
    """Contexts of the next ``count`` events, and the event messages that carried them."""
    contexts: list[str] = []
    messages: list[router_pb2.WatchMetricsResponse] = []
    async with asyncio.timeout(within):
        while len(contexts) < count:
            message = await stream.read()
            assert message is not grpc.aio.EOF
            kind = message.WhichOneof("kind")
            if kind == "event":
                contexts.append(message.event.context)
            elif kind == "events":
                contexts += [e.context for e in message.events.events]
            else:
                continue
            messages.append(message)
    return contexts, messages


def event(context: str) -> RouteEvent:
    attempt = Attempt("local", Outcome.SUCCESS, Category.NONE, "", 1.0)
    return RouteEvent(time.time(), RouteStatus.OK, "default", context, "local", 1.0, (attempt,), {})


async def test_batched_and_unbatched_watchers_see_the_same_events_in_order(
    serve: Serve, upstream: Upstream
) -> None:
    server = await serve([ollama(upstream(Answer("fine")))])
    plain = await watch(server)
    batched = await watch(server, max_events_per_message=100, batch_interval_ms=500)
    sent = [f"e{i}" for i in range(30)]
    for context in sent:
        await server.route(context=context)
    plain_seen, plain_messages = await read_events(plain, 30)
    batched_seen, batched_messages = await read_events(batched, 30)
    assert plain_seen == batched_seen == sent
    assert {m.WhichOneof("kind") for m in plain_messages} == {"event"}  # as before
    assert {m.WhichOneof("kind") for m in batched_messages} == {"events"}
    assert len(batched_messages) <= 15  # a message per half second, not one per call
    plain.cancel()
    batched.cancel()


async def test_filters_apply_inside_batches(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream(Answer("fine")))])
    batched = await watch(
        server, max_events_per_message=10, batch_interval_ms=200, contexts=["keep"]
    )
    for i in range(12):
        await server.route(context="keep" if i % 2 else "drop")
    seen, messages = await read_events(batched, 6)
    assert seen == ["keep"] * 6
    assert all(m.missed_events == 0 for m in messages)
    await server.route(context="drop")
    await server.route(context="keep")
    assert (await read_events(batched, 1))[0] == ["keep"]
    batched.cancel()


async def test_a_slow_batched_watcher_is_told_how_many_events_it_missed(
    serve: Serve, upstream: Upstream
) -> None:
    """A queue of 5, 3 events a message, a message a second: 41 events at once leave the
    newest 5, sent as 3 then 2, the first message telling of the 36 that fell out."""
    server = await serve([ollama(upstream())], metrics=MetricsConfig(watcher_queue=5))
    batched = await watch(server, max_events_per_message=3, batch_interval_ms=1000)
    for i in range(41):
        server.app.bus.publish(event(f"e{i}"))
    seen, messages = await read_events(batched, 5)
    assert seen == [f"e{i}" for i in range(36, 41)]
    assert [len(m.events.events) for m in messages] == [3, 2]
    assert [m.missed_events for m in messages] == [36, 0]
    batched.cancel()


async def test_resume_after_event_id_works_with_batches(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream(Answer("fine")))])
    first = await watch(server, max_events_per_message=5)
    await server.route(context="seen")
    _, messages = await read_events(first, 1)
    last = messages[0].events.events[-1].event_id
    first.cancel()
    for context in ("missed-1", "missed-2", "missed-3"):
        await server.route(context=context)
    again = await watch(server, max_events_per_message=2, resume_after_event_id=last)
    seen, messages = await read_events(again, 3)
    assert seen == ["missed-1", "missed-2", "missed-3"]
    assert [len(m.events.events) for m in messages] == [2, 1]  # the backlog, 2 a message
    await server.route(context="live")
    assert (await read_events(again, 1))[0] == ["live"]  # no duplicates in between
    again.cancel()


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"max_events_per_message": 1001}, "max_events_per_message must be at most 1000"),
        (
            {"max_events_per_message": 10, "batch_interval_ms": 60_001},
            "batch_interval_ms must be at most 60000",
        ),
        ({"batch_interval_ms": 250}, "batch_interval_ms needs max_events_per_message"),
    ],
)
async def test_bad_batch_values_are_invalid_argument(
    serve: Serve, upstream: Upstream, fields: dict[str, int], says: str
) -> None:
    server = await serve([ollama(upstream())])
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest(**fields))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(says)
