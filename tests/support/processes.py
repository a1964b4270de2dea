"""The ``llm-router`` command as a child process, as an operator runs it: the server
(``llm-router serve --config FILE``) and the client commands (``route``, ``watch``, ...)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.checkout import ROOT, child_env
from tests.support.config_files import config_file
from tests.support.net import free_port
from tests.support.upstream import FakeUpstream

LLM_ROUTER = (sys.executable, "-m", "llm_router_server")
"""The ``llm-router`` command of this checkout."""


def server_env() -> dict[str, str]:
    """A child server's environment: this checkout's code, a fake Anthropic key, and no
    configuration from the environment (``LLM_ROUTER_CONFIG``, ``LLM_ROUTER_LISTEN``)."""
    env = child_env()
    env["ANTHROPIC_API_KEY"] = "sk-ant-test-key"
    env.pop("LLM_ROUTER_CONFIG", None)
    env.pop("LLM_ROUTER_LISTEN", None)
    return env


def run_command(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``llm-router ARGS`` run to its end, its stdout and stderr captured as text."""
    return subprocess.run(
        [*LLM_ROUTER, *args], env=server_env(), capture_output=True, text=True, timeout=timeout
    )


async def start_command(*args: str) -> asyncio.subprocess.Process:
    """``llm-router ARGS`` started, its stdout and stderr piped (bytes)."""
    return await asyncio.create_subprocess_exec(
        *LLM_ROUTER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=server_env(),
    )


def run_script(
    script: str, *, env: dict[str, str | None] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a Python ``script`` in a child process that imports this checkout (server, client and
    tests); ``env`` adds variables to its environment (None removes one). Fails the test when
    the child does not exit 0."""
    child = child_env(("server", "client", "."))
    for name, value in (env or {}).items():
        if value is None:
            child.pop(name, None)
        else:
            child[name] = value
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def start_server(config: Path) -> subprocess.Popen[str]:
    """``llm-router serve --config CONFIG``; its stdout and stderr in one text pipe."""
    return subprocess.Popen(
        [*LLM_ROUTER, "serve", "--config", str(config)],
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


def write_config(tmp_path: Path, up: FakeUpstream, grace: float = 5, timeout: float = 5) -> Path:
    """A config file: listen on a free port of 127.0.0.1; the default chain is one Ollama model
    served by ``up``."""
    return config_file(
        tmp_path,
        f"""
[server]
listen = "127.0.0.1:{free_port()}"
grace_seconds = {grace}

[chains.default]
models = [{{ model = "ollama_chat/qwen2.5:7b", timeout = {timeout}, api_base = "{up.url}" }}]
""",
    )


class ServerProcess:
    """``async with ServerProcess(config) as server``: the server started from ``config``,
    SERVING on entry at ``server.target`` (the config's ``server.listen``); on exit it is
    killed if it still runs, and what it printed is in ``server.output``."""

    def __init__(self, config: Path, within: float = 60) -> None:
        self.target: str = tomllib.loads(config.read_text())["server"]["listen"]
        self.config = config
        self.within = within
        self.output = ""
        self.serving_after = 0.0
        """Seconds from start until health said SERVING."""

    async def __aenter__(self) -> ServerProcess:
        self.proc = start_server(self.config)
        try:
            self.serving_after = await wait_serving(self.target, self.proc, within=self.within)
        except BaseException:
            self._end()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._end()

    def _end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.output = self.proc.communicate()[0]
