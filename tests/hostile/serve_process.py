"""``llm-router serve`` as a real process, for what only a process shows: its log output on
stderr, its memory, its exit code and message when start-up fails."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_ROUTER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "server"), str(ROOT / "client")])
    env["ANTHROPIC_API_KEY"] = "sk-ant-test-key-for-the-process"
    env["LITELLM_OFFLINE_MODE"] = "true"
    env.update(extra)
    return env


def serve_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "llm_router_server", "serve", "--config", str(config), *args]


def run_serve(
    config: Path, *args: str, env: dict[str, str] | None = None, within: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a server that is expected to stop on its own (start-up refused)."""
    return subprocess.run(
        serve_command(config, *args),
        env=env or server_env(),
        capture_output=True,
        text=True,
        timeout=within,
    )


class ServerProcess:
    """A running ``llm-router serve``; its combined output is collected as it comes."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            serve_command(config),
            env=env or server_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for chunk in iter(lambda: self.process.stdout.read1(65536), b""):  # type: ignore[union-attr]
            self._chunks.append(chunk)

    @property
    def output(self) -> bytes:
        """Everything the process wrote so far, as raw bytes (control characters included)."""
        return b"".join(self._chunks)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    async def wait_serving(self, target: str, within: float = 60) -> None:
        started = time.monotonic()
        async with grpc.aio.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() - started < within:
                assert self.process.poll() is None, self.output.decode(errors="replace")
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"server not SERVING within {within}s")

    async def wait_for_output(self, text: bytes, within: float = 10) -> None:
        give_up = time.monotonic() + within
        while text not in self.output:
            assert time.monotonic() < give_up, self.output.decode(errors="replace")
            await asyncio.sleep(0.02)

    def stop(self) -> bytes:
        """SIGINT, then the whole output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.output
