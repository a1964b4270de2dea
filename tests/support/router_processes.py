"""``llm-router serve`` as a real process, for tests that need what a deployment has:
separate replicas, the command line, the container's health check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.checkout import ROOT

__all__ = [
    "ROOT",
    "RouterProcess",
    "child_env",
    "launch_router",
    "run_cli",
    "start_router",
    "wait_serving",
]
SERVING = re.compile(r"serving on (127\.0\.0\.1:\d+)")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process that runs this checkout's server and client:
    no LLM_ROUTER_* variables from outside, a fake Anthropic key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_ROUTER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "server"), str(ROOT / "client"), str(ROOT)])
    env["LITELLM_OFFLINE_MODE"] = "true"
    env["ANTHROPIC_API_KEY"] = "sk-ant-test-key"
    env.update(extra or {})
    return env


@dataclass
class RouterProcess:
    process: subprocess.Popen[bytes]
    target: str
    log: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_router(
    config: Path, log: Path, env: Mapping[str, str] | None = None, within: float = 90
) -> RouterProcess:
    """Start ``llm-router serve --config config``; return once it logs its address."""
    return wait_serving(launch_router(config, log, env), log, within)


def launch_router(
    config: Path, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``llm-router serve --config config`` without waiting (see ``wait_serving``),
    so that several replicas start side by side."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "llm_router_server", "serve", "--config", str(config)],
            env=child_env(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_serving(process: subprocess.Popen[bytes], log: Path, within: float = 90) -> RouterProcess:
    """Wait until the server logs its address."""
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        found = SERVING.search(log.read_text(errors="replace"))
        if found:
            return RouterProcess(process, found.group(1), log)
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"server did not start within {within}s:\n{log.read_text()}")


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``llm-router ARGS`` (this checkout's), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "llm_router_server", *args],
        env=child_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
