"""Money where people look: WatchMetrics snapshots (per model and per chain, in process and
cluster-wide through a real Redis), the Redis event payload, Prometheus, the watch view."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from google.protobuf import json_format
from rich.console import Console

from llm_router.v1 import router_pb2
from llm_router_server.cli.watch_view import ViewState, render
from llm_router_server.config import MetricsConfig
from llm_router_server.metrics.redis_codec import METRICS_CHANNEL, event_from_payload
from tests.support.redis_server import RedisServer
from tests.support.server import Running, Serve, anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream, HttpError

pytestmark = pytest.mark.timeout(60)

LOCAL = "ollama_chat/qwen2.5:7b"
HAIKU = "anthropic/claude-haiku-4-5-20251001"
FREE = (0.0, 0.0)
# Two calls: the local model answers one (100 + 20 tokens: $0.0002 avoided at Haiku's price),
# fails the other (503), which Haiku answers (21 + 4 tokens: $0.000041).
AVOIDED, SPENT = 0.0002, 4.1e-05


def two_calls(local: FakeUpstream, cloud: FakeUpstream) -> list[ModelLike]:
    local.script(Answer("ok", prompt_tokens=100, completion_tokens=20), HttpError(503))
    cloud.default = Answer("ok", prompt_tokens=21, completion_tokens=4)
    return [ollama(local, price_per_mtok=FREE), anthropic(cloud)]


ModelLike = Any


async def snapshot_of(server: Running) -> router_pb2.MetricsSnapshot:
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    first = await asyncio.wait_for(stream.read(), 10)
    stream.cancel()
    snapshot: router_pb2.MetricsSnapshot = first.snapshot
    return snapshot


def assert_money(snapshot: router_pb2.MetricsSnapshot, calls: int = 2) -> None:
    [chain] = snapshot.chains
    n = calls // 2
    assert (chain.chain, chain.calls, chain.answered, chain.local) == ("default", calls, calls, n)
    assert chain.cost_usd == pytest.approx(SPENT * n, abs=1e-12)
    assert chain.cost_avoided_usd == pytest.approx(AVOIDED * n, abs=1e-12)
    assert chain.cost_unknown == 0
    models = {m.model: m for m in snapshot.models}
    assert models[LOCAL].cost_usd == 0 and models[LOCAL].cost_unknown == 0
    assert models[LOCAL].cost_avoided_usd == pytest.approx(AVOIDED * n, abs=1e-12)
    assert models[HAIKU].cost_usd == pytest.approx(SPENT * n, abs=1e-12)
    assert models[HAIKU].cost_avoided_usd == 0


async def test_snapshots_count_cost_and_local_share_per_model_and_chain(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    server = await serve(two_calls(upstream(), upstream()))
    await server.route()
    await server.route()
    snapshot = await snapshot_of(server)
    assert not snapshot.cluster_wide
    assert_money(snapshot)


async def test_unknown_costs_are_counted_not_added(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    up = upstream()
    up.default = Answer("ok", prompt_tokens=10, completion_tokens=10)
    server = await serve([ollama(up)])  # no price configured: unknown
    await server.route()
    snapshot = await snapshot_of(server)
    [model], [chain] = snapshot.models, snapshot.chains
    assert (model.cost_usd, model.cost_unknown) == (0, 1)
    assert (chain.cost_usd, chain.cost_unknown, chain.local, chain.cost_avoided_usd) == (0, 1, 1, 0)


async def test_redis_carries_money_in_events_and_cluster_counters(
    serve: Serve, upstream: Callable[[], FakeUpstream], redis_server: RedisServer
) -> None:
    local, cloud = upstream(), upstream()
    models = two_calls(local, cloud)
    metrics = {"redis_url": redis_server.url}
    a = await serve(models, metrics=MetricsConfig(replica_id="a", **metrics))
    b = await serve(models, metrics=MetricsConfig(replica_id="b", **metrics))
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(METRICS_CHANNEL)
    await a.route()
    await b.route()
    payloads = []
    async with asyncio.timeout(10):
        while len(payloads) < 2:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                payloads.append(json.loads(message["data"]))
    await pubsub.aclose()
    await client.aclose()
    local_call, cloud_call = payloads
    # The money travels in the payload's proto event (version 2), as RouteEvent has it.
    local, cloud = local_call["event"], cloud_call["event"]
    assert local["cost_usd"] == 0 and local["local_answer"] is True
    assert local["cost_avoided_usd"] == pytest.approx(AVOIDED, abs=1e-12)
    assert [x["cost_usd"] for x in local["attempts"]] == [0]
    assert [x["repair"] for x in local["attempts"]] == [0]
    assert cloud["cost_usd"] == pytest.approx(SPENT, abs=1e-12)
    assert cloud["local_answer"] is False and cloud["cost_avoided_usd"] == 0
    parsed = json_format.ParseDict(cloud, router_pb2.RouteEvent())
    assert parsed.cost_usd == pytest.approx(SPENT, abs=1e-12) and parsed.HasField("cost_usd")
    event = event_from_payload(cloud_call)
    assert [x.cost_usd for x in event.attempts] == [0, pytest.approx(SPENT, abs=1e-12)]
    snapshot = await snapshot_of(a)  # a saw one call; the counters in Redis saw both
    assert snapshot.cluster_wide
    assert_money(snapshot)


async def test_prometheus_counts_dollars(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    server = await serve(
        two_calls(upstream(), upstream()),
        metrics=MetricsConfig(prometheus_listen="127.0.0.1:0"),
    )
    await server.route()
    await server.route()
    exporter = server.app.prometheus
    assert exporter is not None

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(scrape)
    for line in (
        f'llm_router_cost_usd_total{{chain="default",model="{HAIKU}"}} {SPENT}',
        f'llm_router_cost_usd_total{{chain="default",model="{LOCAL}"}} 0.0',
        f'llm_router_cost_avoided_usd_total{{chain="default",model="{LOCAL}"}} {AVOIDED}',
        'llm_router_answers_total{chain="default",local="true"} 1.0',
        'llm_router_answers_total{chain="default",local="false"} 1.0',
    ):
        assert line in text, line
    assert "llm_router_cost_unknown_attempts_total{" not in text


def test_the_watch_view_shows_money_per_model_and_chain() -> None:
    state = ViewState()
    snapshot = router_pb2.MetricsSnapshot(
        models=[
            router_pb2.ModelCounters(
                model=LOCAL, success=4, cost_avoided_usd=0.0008, repairs=2, repair_successes=1
            ),
            router_pb2.ModelCounters(model=HAIKU, success=1, cost_usd=0.000041, cost_unknown=1),
        ],
        chains=[
            router_pb2.ChainCounters(
                chain="default", calls=5, answered=5, local=4, cost_usd=0.000041,
                cost_avoided_usd=0.0008,
            )
        ],
    )  # fmt: skip
    state.update(router_pb2.WatchMetricsResponse(snapshot=snapshot))
    event = router_pb2.RouteEvent(
        status=router_pb2.ROUTE_STATUS_OK,
        chain="default",
        model_used=LOCAL,
        local_answer=True,
        cost_usd=0.0,
        cost_avoided_usd=0.0002,
        attempts=[
            router_pb2.Attempt(model=LOCAL, outcome=router_pb2.ATTEMPT_OUTCOME_INVALID),
            router_pb2.Attempt(model=LOCAL, outcome=router_pb2.ATTEMPT_OUTCOME_SUCCESS, repair=1),
        ],
    )
    state.update(router_pb2.WatchMetricsResponse(event=event))
    console = Console(record=True, width=200)
    console.print(render(state, "127.0.0.1:50051"))
    screen = console.export_text()
    chain = next(line for line in screen.splitlines() if line.strip().startswith("│ default"))
    # 6 calls, 5 of them local (83%); $0.001 avoided after the event's $0.0002.
    assert all(cell in chain for cell in ("6", "83%", "$0.000041", "$0.001"))
    haiku = next(line for line in screen.splitlines() if "claude-haiku" in line and "│" in line)
    assert "$0.000041 +1 unknown" in haiku
    assert "qwen2.5:7b:invalid > qwen2.5:7b repair 1:success" in screen
    assert "1/2" in screen  # repairs that succeeded / repairs
