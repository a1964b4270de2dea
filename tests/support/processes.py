"""The ``llm-router`` command as a child process, as an operator runs it. Use a process only
for what only a process shows (its output, its exit code and message, signals, separate
replicas, the command line); the in-process fixtures (``tests/support/server.py``) are faster.

Which helper:

- ``run_command(ARGS)``: run ``llm-router ARGS`` to its end (``--help``, a ``serve`` that
  refuses its configuration, ``route``, ``health``); stdout and stderr as text.
- ``start_command(ARGS)``: start ``llm-router ARGS`` as an asyncio process, to read its
  output while it runs (``watch``) or to feed it.
- ``ServerProcess(config)``: a running ``llm-router serve --config CONFIG``, its output
  collected as it comes. Wait until it serves with ``wait_healthy()`` (the health service
  says SERVING at the config's ``server.listen``; ``async with`` does this) or
  ``wait_logged()`` (it logged ``serving on ADDRESS``: for ``listen = "127.0.0.1:0"``, and
  for sync fixtures). ``stop()`` sends SIGTERM, then SIGKILL.
- ``run_script(SCRIPT)``: a Python script in a child process that imports this checkout.

Every child gets ``tests.support.checkout.child_env``: ``env=`` arguments add to it.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.checkout import ROOT, child_env
from tests.support.config_files import config_file
from tests.support.net import free_port
from tests.support.upstream import FakeUpstream

LLM_ROUTER = (sys.executable, "-m", "llm_router_server")
"""The ``llm-router`` command of this checkout."""

Env = Mapping[str, str | None]
"""Variables added to a child's environment (``None`` removes one); see ``child_env``."""

SERVING = re.compile(r"serving on (127\.0\.0\.1:\d+)")
"""The server's log line once it listens, with its address."""


def run_command(
    *args: str, env: Env | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``llm-router ARGS`` run to its end, its stdout and stderr captured as text."""
    return subprocess.run(
        [*LLM_ROUTER, *args],
        env=child_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def start_command(*args: str, env: Env | None = None) -> asyncio.subprocess.Process:
    """``llm-router ARGS`` started, its stdout and stderr piped (bytes)."""
    return await asyncio.create_subprocess_exec(
        *LLM_ROUTER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=child_env(env),
    )


def run_script(
    script: str, *, env: Env | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a Python ``script`` in a child process that imports this checkout (server, client and
    tests); ``env`` adds variables to its environment (None removes one). Fails the test when
    the child does not exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


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
    """``llm-router serve --config CONFIG`` started (``env`` adds to its environment); its
    stdout and stderr together are collected as they come, so it never blocks on a full pipe.

    ``async with ServerProcess(config) as server``: SERVING on entry; stopped on exit."""

    def __init__(self, config: Path, env: Env | None = None) -> None:
        listen = tomllib.loads(config.read_text()).get("server", {}).get("listen", "")
        self.target: str = "" if listen.endswith(":0") else listen
        """Where it serves: the config's ``server.listen``, or the address it logged
        (``wait_logged``) when that leaves the port to the system."""
        self.serving_after = 0.0
        """Seconds from start until it served (set by the waits)."""
        self._started = time.monotonic()
        self.process = subprocess.Popen(
            [*LLM_ROUTER, "serve", "--config", str(config)],
            env=child_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for chunk in iter(lambda: stdout.read1(65536), b""):  # type: ignore[attr-defined]
            self._chunks.append(chunk)

    @property
    def raw_output(self) -> bytes:
        """Everything the process wrote so far, as raw bytes (control characters included)."""
        return b"".join(self._chunks)

    @property
    def output(self) -> str:
        """Everything the process wrote so far, as text."""
        return self.raw_output.decode(errors="replace")

    def _assert_running(self) -> None:
        if self.process.poll() is not None:
            self._reader.join(5)
            raise AssertionError(f"server exited {self.process.returncode}:\n{self.output}")

    async def wait_healthy(self, within: float = 60) -> float:
        """Wait until the health service at ``target`` says SERVING; the seconds from start."""
        assert self.target, "the config leaves the port to the system: use wait_logged()"
        give_up = time.monotonic() + within
        async with grpc.aio.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < give_up:
                self._assert_running()
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        self.serving_after = time.monotonic() - self._started
                        return self.serving_after
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"server not SERVING within {within}s:\n{self.output}")

    def wait_logged(self, within: float = 90) -> ServerProcess:
        """Wait until the server logs ``serving on ADDRESS``; ``target`` is that address.
        A server that does not is killed."""
        give_up = time.monotonic() + within
        while time.monotonic() < give_up:
            found = SERVING.search(self.output)
            if found:
                self.target = found.group(1)
                self.serving_after = time.monotonic() - self._started
                return self
            self._assert_running()
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"server did not start within {within}s:\n{self.output}")

    async def wait_for_output(self, text: str, within: float = 10) -> None:
        """Wait until ``text`` is in what the server wrote."""
        give_up = time.monotonic() + within
        while text not in self.output:
            assert time.monotonic() < give_up, self.output
            await asyncio.sleep(0.02)

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        """Send ``how`` if it still runs, SIGKILL after 15 s; then all its output is in."""
        if self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    async def __aenter__(self) -> ServerProcess:
        try:
            await self.wait_healthy()
        except BaseException:
            await asyncio.to_thread(self.stop, signal.SIGKILL)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)
