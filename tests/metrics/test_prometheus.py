"""What Grafana sees: the Prometheus endpoint (its counters, the circuit gauges), off by default,
and a port in use stopping start-up."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from llm_router.v1 import router_pb2
from llm_router_server.breaker.breaker import BreakerPolicy
from llm_router_server.config import MetricsConfig
from tests.support.fixtures import Upstream
from tests.support.server import Serve, anthropic, ollama
from tests.support.upstream import Answer, HttpError

pytestmark = pytest.mark.timeout(60)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


async def test_prometheus_endpoint_serves_the_counters(serve: Serve, upstream: Upstream) -> None:
    local = upstream(HttpError(503))
    cloud = upstream(Answer("fine", prompt_tokens=7, completion_tokens=3))
    server = await serve(
        [ollama(local), anthropic(cloud)],
        metrics=MetricsConfig(prometheus_listen="127.0.0.1:0", replica_id="p"),
    )
    await server.route()
    await server.route()
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    await stream.read()
    exporter = server.app.prometheus
    assert exporter is not None
    text = await asyncio.to_thread(scrape, exporter.port)
    stream.cancel()
    haiku = "anthropic/claude-haiku-4-5-20251001"
    for line in (
        f'llm_router_requests_total{{chain="default",locality="cloud",model="{haiku}",'
        'status="ok"} 2.0',
        'llm_router_fallbacks_total{chain="default",model="ollama_chat/qwen2.5:7b"} 2.0',
        'llm_router_attempts_total{chain="default",locality="local",'
        'model="ollama_chat/qwen2.5:7b",outcome="rejected",reason="provider_error"} 2.0',
        f'llm_router_tokens_total{{chain="default",kind="prompt",locality="cloud",'
        f'model="{haiku}"}} 14.0',
        f'llm_router_attempt_latency_seconds_count{{chain="default",model="{haiku}",'
        'outcome="success"} 2.0',
        "llm_router_metrics_events_dropped_total 0.0",
        "llm_router_metrics_events_published_total 2.0",
        "llm_router_watchers 1.0",
    ):
        assert line in text, line


async def test_prometheus_is_off_by_default(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream())])
    assert server.app.prometheus is None


async def test_prometheus_port_in_use_stops_start_up(serve: Serve, upstream: Upstream) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await serve(
                [ollama(upstream())],
                metrics=MetricsConfig(prometheus_listen=f"127.0.0.1:{port}"),
            )


async def test_circuit_changes_reach_watchers_snapshots_and_prometheus(
    serve: Serve, upstream: Upstream
) -> None:
    """A primary that keeps failing opens its circuit: a watcher is told as it happens
    (a CircuitChange message), snapshots show the model OPEN with the reason, and
    Prometheus has the state gauge and the transition counter."""
    local, cloud = upstream(HttpError(503)), upstream(Answer("fine"))
    server = await serve(
        [ollama(local), anthropic(cloud)],
        metrics=MetricsConfig(prometheus_listen="127.0.0.1:0"),
        breaker=BreakerPolicy(failure_threshold=2, cool_down_seconds=60),
    )
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    first = await stream.read()
    assert first.WhichOneof("kind") == "snapshot"
    for _ in range(3):
        await server.route()
    kinds = []
    change = None
    while change is None:
        message = await asyncio.wait_for(stream.read(), 5)
        kinds.append(message.WhichOneof("kind"))
        if message.WhichOneof("kind") == "circuit":
            change = message.circuit
    assert change.model == "ollama_chat/qwen2.5:7b"
    assert change.api_base == local.url
    assert (change.from_state, change.to_state) == (
        router_pb2.CIRCUIT_STATE_CLOSED,
        router_pb2.CIRCUIT_STATE_OPEN,
    )
    assert "503" in change.reason and change.cool_down_seconds == 60
    stream.cancel()

    again = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    snapshot = (await again.read()).snapshot
    again.cancel()
    by_model = {m.model: m for m in snapshot.models}
    assert by_model["ollama_chat/qwen2.5:7b"].circuit == router_pb2.CIRCUIT_STATE_OPEN
    assert "503" in by_model["ollama_chat/qwen2.5:7b"].circuit_reason
    assert (
        by_model["anthropic/claude-haiku-4-5-20251001"].circuit == router_pb2.CIRCUIT_STATE_CLOSED
    )

    exporter = server.app.prometheus
    assert exporter is not None
    text = await asyncio.to_thread(scrape, exporter.port)
    assert (
        f'llm_router_circuit_state{{api_base="{local.url}",model="ollama_chat/qwen2.5:7b"}} 2.0'
        in text
    )
    assert (
        'llm_router_circuit_transitions_total{model="ollama_chat/qwen2.5:7b",state="open"} 1.0'
        in text
    )
