"""The server as a process: start-up, config errors, the CLI, and SIGTERM with a call in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llm_router.v1 import router_pb2, router_pb2_grpc
from tests.support.checkout import ROOT
from tests.support.net import free_port
from tests.support.upstream import Answer, FakeUpstream, Slow
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "server"), str(ROOT / "client")])
    env["ANTHROPIC_API_KEY"] = "sk-ant-test-key"
    env.pop("LLM_ROUTER_CONFIG", None)
    return env


def start_server(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "llm_router_server", "serve", "--config", str(config)],
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def wait_serving(target: str, proc: subprocess.Popen[str], within: float) -> float:
    """Seconds until health says SERVING."""
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - started < within:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"server not SERVING within {within}s")


def write_config(tmp_path: Path, up: FakeUpstream, port: int, grace: float = 5) -> Path:
    path = tmp_path / "llm-router.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
grace_seconds = {grace}

[chains.default]
models = [{{ model = "ollama_chat/qwen2.5:7b", timeout = 5, api_base = "{up.url}" }}]
"""
    )
    return path


async def test_sigterm_lets_the_call_in_flight_finish_then_exits_zero(
    tmp_path: Path, upstream: type[FakeUpstream]
) -> None:
    up = upstream()
    up.default = Slow(1.0, Answer("finished"))
    port = free_port()
    proc = start_server(write_config(tmp_path, up, port))
    target = f"127.0.0.1:{port}"
    try:
        await wait_serving(target, proc, within=60)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            call = stub.Route(
                router_pb2.RouteRequest(messages=[router_pb2.Message(role="user", content="hi")]),
                timeout=20,
            )
            await eventually(up.chat_requests)
            proc.send_signal(signal.SIGTERM)
            reply = await call
        assert reply.content.string_value == "finished"
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    assert "shutting down" in output


async def test_server_reports_serving_and_answers_after_start(
    tmp_path: Path, upstream: type[FakeUpstream]
) -> None:
    up = upstream()
    up.default = Answer("hello")
    port = free_port()
    proc = start_server(write_config(tmp_path, up, port))
    try:
        seconds = await wait_serving(f"127.0.0.1:{port}", proc, within=60)
        print(f"start-up to SERVING: {seconds:.2f}s")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_bad_config_stops_start_up_with_the_key_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlisten_on = "x"\n')
    result = subprocess.run(
        [sys.executable, "-m", "llm_router_server", "serve", "--config", str(path)],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown key(s): 'server.listen_on'" in result.stderr


@pytest.mark.parametrize("command", [[], ["serve"], ["route"], ["health"]])
def test_cli_help(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llm_router_server", *command, "--help"],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "usage: llm-router" in result.stdout
