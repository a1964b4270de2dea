"""What a dashboard needs from /metrics: every Router call by status code (those rejected
before any model included), the local/cloud split, and the process's own metrics."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import grpc
import pytest

from llm_router.v1 import router_pb2
from llm_router_server.config import AuthConfig, MetricsConfig
from llm_router_server.providers.identity import identify
from llm_router_server.types import ModelSpec
from tests.support.server import Serve, anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream, HttpError

TOKEN = "a-test-token-0123456789"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


async def eventually(port: int, check: Any) -> str:
    """Scrape until ``check(text)`` holds (a rejected call is counted when gRPC lets go of it)."""
    for _ in range(50):
        text = await asyncio.to_thread(scrape, port)
        if check(text):
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"never held; last scrape:\n{text}")


async def test_calls_rejected_before_any_model_are_counted_by_code(
    serve: Serve, upstream: Any
) -> None:
    up: FakeUpstream = upstream()
    server = await serve(
        [ollama(up)],
        metrics=MetricsConfig(prometheus_listen="127.0.0.1:0"),
        auth=AuthConfig(tokens=(TOKEN,)),
        server={"max_receive_bytes": 10_000},
    )
    good = (("authorization", f"Bearer {TOKEN}"),)
    message = [router_pb2.Message(role="user", content="hi")]
    await server.stub.Route(router_pb2.RouteRequest(messages=message), metadata=good)
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await server.stub.Route(router_pb2.RouteRequest(), metadata=good)  # no messages
    with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
        await server.stub.Route(router_pb2.RouteRequest(messages=message))
    huge = [router_pb2.Message(role="user", content="x" * 20_000)]
    with pytest.raises(grpc.aio.AioRpcError) as exhausted:
        await server.stub.Route(router_pb2.RouteRequest(messages=huge), metadata=good)
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert unauthenticated.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert exhausted.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert server.app.prometheus is not None
    port = server.app.prometheus.port

    def counted(text: str) -> bool:
        return (
            sample(text, "llm_router_grpc_calls_total", method="Route", code="RESOURCE_EXHAUSTED")
            == 1
        )

    text = await eventually(port, counted)
    calls = "llm_router_grpc_calls_total"
    assert sample(text, calls, method="Route", code="OK") == 1
    assert sample(text, calls, method="Route", code="INVALID_ARGUMENT") == 1
    assert sample(text, calls, method="Route", code="UNAUTHENTICATED") == 1
    # Only the call that reached the chain is a Route event.
    assert sample(text, "llm_router_metrics_events_published_total") == 1
    assert len(up.chat_requests()) == 1


async def test_watch_metrics_calls_are_counted_with_their_end(serve: Serve, upstream: Any) -> None:
    server = await serve(
        [ollama(upstream())], metrics=MetricsConfig(prometheus_listen="127.0.0.1:0")
    )
    with pytest.raises(grpc.aio.AioRpcError):
        stream = server.stub.WatchMetrics(
            router_pb2.WatchMetricsRequest(snapshot_interval_seconds=-1)
        )
        await stream.read()
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    await stream.read()
    stream.cancel()
    assert server.app.prometheus is not None
    text = await eventually(
        server.app.prometheus.port,
        lambda t: (
            sample(t, "llm_router_grpc_calls_total", method="WatchMetrics", code="CANCELLED") == 1
        ),
    )
    assert (
        sample(text, "llm_router_grpc_calls_total", method="WatchMetrics", code="INVALID_ARGUMENT")
        == 1
    )


async def test_the_local_share_and_process_metrics_are_exported(
    serve: Serve, upstream: Any
) -> None:
    local: FakeUpstream = upstream()
    cloud: FakeUpstream = upstream()
    local.script(Answer("local answer"), HttpError(503))
    cloud.default = Answer("cloud answer")
    server = await serve(
        [ollama(local), anthropic(cloud)], metrics=MetricsConfig(prometheus_listen="127.0.0.1:0")
    )
    await server.route()  # answered locally
    await server.route()  # the local model fails: answered in the cloud
    assert server.app.prometheus is not None
    text = await asyncio.to_thread(scrape, server.app.prometheus.port)
    requests = "llm_router_requests_total"
    local_model, cloud_model = "ollama_chat/qwen2.5:7b", "anthropic/claude-haiku-4-5-20251001"
    labels = {"chain": "default", "status": "ok"}
    assert sample(text, requests, **labels, model=local_model, locality="local") == 1
    assert sample(text, requests, **labels, model=cloud_model, locality="cloud") == 1
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert f"\n{name}" in text, name


@pytest.mark.parametrize(
    ("spec", "provider", "name", "locality"),
    [
        (
            ModelSpec("ollama_chat/qwen2.5:7b", 8, api_base="http://gpu.example.com:11434"),
            "ollama",
            "qwen2.5:7b",
            "local",
        ),
        (
            ModelSpec("claude-haiku-4-5-20251001", 30),
            "anthropic",
            "claude-haiku-4-5-20251001",
            "cloud",
        ),
        (
            ModelSpec("anthropic/claude-sonnet-4-6", 30, api_base="http://127.0.0.1:4000"),
            "anthropic",
            "claude-sonnet-4-6",
            "cloud",
        ),
        (ModelSpec("openai/gpt-4o", 30), "openai", "gpt-4o", "cloud"),
        (
            ModelSpec("openai/qwen", 30, api_base="http://10.0.0.5:8000/v1"),
            "openai",
            "qwen",
            "local",
        ),
        (ModelSpec("openai/qwen", 30, api_base="http://vllm:8000/v1"), "openai", "qwen", "local"),
        (
            ModelSpec("openai/qwen", 30, api_base="http://vllm.ml.svc:8000/v1"),
            "openai",
            "qwen",
            "local",
        ),
        (
            ModelSpec("hosted_vllm/llama", 30, api_base="https://llm.example.com"),
            "hosted_vllm",
            "llama",
            "local",
        ),
        (ModelSpec("gemini/gemini-2.5-pro", 30), "gemini", "gemini-2.5-pro", "cloud"),
    ],
)
def test_models_are_told_apart_as_local_or_cloud(
    spec: ModelSpec, provider: str, name: str, locality: str
) -> None:
    who = identify(spec)
    assert (who.provider, who.name, who.locality) == (provider, name, locality)


def test_a_server_address_is_read_from_the_api_base() -> None:
    who = identify(ModelSpec("openai/qwen", 30, api_base="http://10.0.0.5:8000/v1"))
    assert (who.address, who.port) == ("10.0.0.5", 8000)
    default = identify(ModelSpec("claude-haiku-4-5-20251001", 30))
    assert (default.address, default.port) == ("api.anthropic.com", 443)
