"""The local model: warm-up at start-up, Ollama's keep_alive, and health that never depends on
anything optional."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from llm_router_server.providers.http_provider import USER_AGENT
from tests.support.fixtures import Upstream
from tests.support.net import free_port
from tests.support.server import Running, Serve, anthropic, ollama
from tests.support.upstream import Answer, Hang
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


async def serving(server: Running) -> int:
    return int((await server.health()).status)


async def test_warm_up_sends_one_call_at_start_with_keep_alive(
    serve: Serve, upstream: Upstream
) -> None:
    local, cloud = upstream(Answer("OK")), upstream()
    model = ollama(local, warm_up=True, params={"keep_alive": "30m"})
    await serve([model, anthropic(cloud)])
    await eventually(local.chat_requests)
    [warm] = local.chat_requests()
    assert warm.body["keep_alive"] == "30m"
    assert cloud.chat_requests() == []  # only models marked warm_up are warmed


async def test_keep_alive_goes_with_every_ollama_call(serve: Serve, upstream: Upstream) -> None:
    local = upstream(Answer("hello"))
    server = await serve([ollama(local, params={"keep_alive": -1})])
    await server.route()
    [call] = local.chat_requests()
    assert call.body["keep_alive"] == -1
    assert "keep_alive" not in call.body["options"]
    assert call.headers["User-Agent"] == USER_AGENT  # keep_alive keeps the native path


async def test_a_failing_warm_up_leaves_the_service_serving(
    serve: Serve, upstream: Upstream
) -> None:
    cloud = upstream(Answer("from the cloud"))
    dead = ollama(cloud, warm_up=True)
    dead = type(dead)(dead.model, 2, f"http://127.0.0.1:{free_port()}", warm_up=True)
    server = await serve([dead, anthropic(cloud)])
    assert await serving(server) == health_pb2.HealthCheckResponse.SERVING
    assert (await server.route()).model_used.startswith("anthropic/")
    assert await serving(server) == health_pb2.HealthCheckResponse.SERVING


async def test_a_hanging_warm_up_does_not_delay_start_or_stop(
    serve: Serve, upstream: Upstream
) -> None:
    local = upstream(Hang())
    server = await serve([ollama(local, warm_up=True)])
    assert await serving(server) == health_pb2.HealthCheckResponse.SERVING
    await eventually(local.chat_requests)
    await server.app.stop(0)  # cancels the warm-up; the fixture's second stop is harmless
    assert await local.wait_for_disconnects(1, 5.0)
