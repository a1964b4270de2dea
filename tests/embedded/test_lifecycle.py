"""The router runs the embedded model itself: starts it before SERVING, stops it with itself,
reports a killed or hung model server as a provider error (the chain falls through), and
restarts it with back-off."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llm_router.v1 import router_pb2
from llm_router_server.embedded.process import (
    API_KEY_VARIABLE,
    CHILD,
    EmbeddedServer,
    EmbeddedStartError,
    free_port,
)
from llm_router_server.embedded.settings import EMBEDDED_API_BASE, EmbeddedConfig
from llm_router_server.types import ModelSpec
from tests.embedded.conftest import THREADS, wait_healthy
from tests.support.processes import ServerProcess, run_command
from tests.support.server import Running, Serve, openai
from tests.support.upstream import Answer, FakeUpstream
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)

ENABLED = EmbeddedConfig(enabled=True, threads=THREADS)
REJECTED = router_pb2.ATTEMPT_OUTCOME_REJECTED


def embedded(gguf: Path, timeout: float = 20.0) -> ModelSpec:
    """The embedded model as a configuration names it."""
    params = {"max_tokens": 16, "temperature": 0}
    return ModelSpec(f"openai/{gguf.stem}", timeout, api_base=EMBEDDED_API_BASE, params=params)


async def restarted(server: EmbeddedServer) -> None:
    """Wait until the supervisor has seen the child end and a new one is healthy."""
    await eventually(lambda: server.exits, within=30)
    await asyncio.wait_for(server.up.wait(), 40)


async def with_fallback(
    serve: Serve, upstream: type[FakeUpstream], gguf: Path, local_timeout: float = 20.0
) -> tuple[Running, EmbeddedServer]:
    """A default chain of the embedded model (``local_timeout``), then a fake; and a chain
    "patient" that gives the embedded model 20 s."""
    up = upstream()
    up.default = Answer("from the fallback")
    server = await serve(
        [embedded(gguf, local_timeout), openai(up)],
        chains={"patient": [embedded(gguf), openai(up)]},
        embedded=ENABLED,
    )
    assert server.app.embedded is not None
    return server, server.app.embedded


async def test_the_server_starts_the_model_before_serving_and_stops_it_with_itself(
    serve: Serve, gguf: Path
) -> None:
    server = await serve([embedded(gguf)], embedded=ENABLED)
    model = server.app.embedded
    assert model is not None and model.starts == 1
    assert await model.healthy()  # already when start() returned, before SERVING
    health = health_pb2_grpc.HealthStub(server.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    [spec] = server.app.config.chains["default"].models
    assert spec.api_base == model.api_base and spec.params["api_key"] == model.api_key
    answer = await server.route("Say hello.")
    assert answer.model_used == f"openai/{gguf.stem}"
    process = model.process
    assert process is not None
    await server.app.stop(0)
    assert process.returncode is not None and model.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


async def test_a_killed_model_server_is_a_provider_error_and_is_restarted(
    serve: Serve, upstream: type[FakeUpstream], gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "llm_router_server.embedded")
    server, model = await with_fallback(serve, upstream, gguf)
    process = model.process
    assert process is not None
    process.kill()
    await process.wait()
    reply = await server.route("Say hello.")  # before the restart (1 s back-off)
    first = reply.attempts[0]
    assert (first.outcome, first.reason_category) == (
        REJECTED,
        router_pb2.REASON_CATEGORY_PROVIDER_ERROR,
    )
    assert "connection refused" in first.reason
    assert reply.model_used == "openai/gpt-test"
    await restarted(model)
    assert model.exits == ["was killed by SIGKILL"]
    assert model.starts == 2
    # The hang opened the model's circuit; the background probe closes it once the restarted
    # server answers (docs/resilience.md, coming back): until then calls go to the fallback.
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 20
    again = await server.route("Say hello.", chain="patient")
    while again.model_used != f"openai/{gguf.stem}" and loop.time() < give_up:
        await asyncio.sleep(0.5)
        again = await server.route("Say hello.", chain="patient")
    assert again.model_used == f"openai/{gguf.stem}"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("was killed by SIGKILL; restarting it in 1s" in e for e in errors)


async def test_a_hung_model_server_times_out_then_is_killed_and_restarted(
    serve: Serve,
    upstream: type[FakeUpstream],
    gguf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGSTOP: the call reaches the open port and gets no answer (TIMEOUT, the chain falls
    through); the health probes fail and the supervisor kills and replaces the process."""
    monkeypatch.setattr(EmbeddedServer, "probe_interval", 1.0)
    monkeypatch.setattr(EmbeddedServer, "probe_timeout", 1.0)
    monkeypatch.setattr(EmbeddedServer, "restart_delay", 0.1)
    server, model = await with_fallback(serve, upstream, gguf, local_timeout=1.5)
    assert model.pid is not None
    os.kill(model.pid, signal.SIGSTOP)
    reply = await server.route("Say hello.")
    first = reply.attempts[0]
    assert (first.outcome, first.reason_category) == (REJECTED, router_pb2.REASON_CATEGORY_TIMEOUT)
    assert reply.model_used == "openai/gpt-test"
    await restarted(model)
    assert model.exits[0].startswith("did not answer /health 3 times in a row")
    # The hang opened the model's circuit; the background probe closes it once the restarted
    # server answers (docs/resilience.md, coming back): until then calls go to the fallback.
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 20
    again = await server.route("Say hello.", chain="patient")
    while again.model_used != f"openai/{gguf.stem}" and loop.time() < give_up:
        await asyncio.sleep(0.5)
        again = await server.route("Say hello.", chain="patient")
    assert again.model_used == f"openai/{gguf.stem}"


# A stand-in model server for the back-off test: answers /health, then crashes at once.
CRASHING = """
import http.server, os, sys, threading
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
threading.Timer(0.2, lambda: os._exit(3)).start()
server.serve_forever()
"""


@pytest.mark.parametrize(
    ("stable_after", "delays"), [(60.0, [0.1, 0.2, 0.4, 0.4]), (0.0, [0.1, 0.1, 0.1, 0.1])]
)
async def test_restarts_back_off_doubling_until_a_server_stays_up(
    stable_after: float, delays: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EmbeddedServer, "restart_delay", 0.1)
    monkeypatch.setattr(EmbeddedServer, "max_restart_delay", 0.4)
    monkeypatch.setattr(EmbeddedServer, "stable_after", stable_after)
    port = free_port()
    command = [sys.executable, "-c", CRASHING, str(port)]
    server = EmbeddedServer(replace(ENABLED, port=port), Path("unused.gguf"), command)
    await server.start()
    try:
        await eventually(lambda: len(server.restart_delays) >= 4, within=30)
    finally:
        await server.stop()
    assert server.restart_delays[:4] == delays
    assert set(server.exits) == {"exited with code 3"}


async def test_a_model_file_that_does_not_load_fails_the_start_with_the_servers_words(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a GGUF file")
    server = EmbeddedServer(ENABLED, bad)
    with pytest.raises(EmbeddedStartError) as caught:
        await server.start()
    message = str(caught.value)
    assert "exited with code" in message and "broken.gguf" in message
    assert "last output:" in message
    assert server.process is None  # nothing left running


def test_serve_stops_with_a_clear_message_when_the_model_does_not_load(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a GGUF file")
    config = tmp_path / "llm-router.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\n[embedded]\nenabled = true\nmodel_path = "{bad}"\n'
    )
    result = run_command("serve", "--config", str(config))
    assert result.returncode == 1
    assert "llm-router: cannot serve: embedded model server exited with code 1" in result.stderr


def test_serve_with_the_model_writes_only_its_own_log_lines(gguf: Path, tmp_path: Path) -> None:
    """Starting the model's process under a running gRPC server: no line from gRPC's fork
    handlers ("Other threads are currently calling into gRPC, skipping fork() handlers")."""
    config = tmp_path / "llm-router.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\n[embedded]\nenabled = true\nmodel_path = "{gguf}"\n'
        f"threads = {THREADS}\n"
    )
    server = ServerProcess(config)
    try:
        server.wait_logged()
    finally:
        server.stop()
    assert "embedded model ready" in server.output
    assert "fork" not in server.output, server.output


def test_the_model_server_exits_when_the_router_goes_away(gguf: Path) -> None:
    """Its standard input is a pipe only the router holds: when that closes, it exits."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(CHILD), "--model", str(gguf), "--port", str(port), "--threads", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, API_KEY_VARIABLE: "k"},
    )
    try:
        wait_healthy(port, process)
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
