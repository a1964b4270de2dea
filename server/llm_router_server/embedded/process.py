"""``EmbeddedServer``: the embedded model's llama.cpp server, run as a child of the router.

Lifecycle:

- ``start()`` spawns ``child.py`` on a loopback port (chosen when the object is
  made, so the chains' URL is known before the server starts), then polls its
  ``/health`` until it answers 200 (the model is loaded): the router reports
  SERVING only after that. A child that exits or stays unhealthy for
  ``start_timeout`` fails the start with ``EmbeddedStartError`` and the last
  lines it wrote.
- While it runs, a supervisor task waits for the child to exit and probes
  ``/health`` every ``probe_interval``; ``probe_failures`` failed probes in a
  row (a hung or stopped process) kill it. Either way the end is logged as an
  error with the child's last output, and a new child is started after a
  back-off that doubles from ``restart_delay`` up to ``max_restart_delay``
  (reset once a child has run ``stable_after`` seconds). Calls made meanwhile
  fail at the provider (connection refused, or their timeout), and the chain
  moves on to its next model, as for any provider that is down.
- ``stop()`` ends the supervisor and the child (SIGTERM, then SIGKILL). The
  child also ends by itself when the router dies: it exits when its standard
  input, whose other end only the router holds, closes.

Each start gets a fresh random API key (given to the child in its environment,
sent by the chains as ``params.api_key``), so other local processes cannot use
the model server by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from llm_router_server.embedded.model import locate
from llm_router_server.embedded.settings import EmbeddedConfig, bind, uses
from llm_router_server.types import ChainSpec

if TYPE_CHECKING:
    from llm_router_server.config import Config

logger = logging.getLogger(__name__)
child_logger = logging.getLogger("llm_router_server.embedded.llama")

CHILD = Path(__file__).with_name("child.py")
API_KEY_VARIABLE = "LLM_ROUTER_EMBEDDED_API_KEY"  # the same name in child.py
OUTPUT_LINES = 30
"""Lines of the child's output kept for the crash report."""


class EmbeddedStartError(OSError):
    """The embedded model server did not become healthy (``llm-router serve`` reports an
    OSError as "cannot serve" and exits 1)."""


def attach(config: Config) -> tuple[Config, EmbeddedServer | None]:
    """The server for ``config``'s chains (None when none names the embedded model), and the
    config with its URL and key filled in. Nothing starts before ``start()``."""
    if not uses(config.chains):
        return config, None
    server = EmbeddedServer(config.embedded, locate(config.embedded.model_path))
    return replace(config, chains=server.bind(config.chains)), server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class EmbeddedServer:
    """One embedded model server: a supervised child process on a loopback port."""

    restart_delay = 1.0
    max_restart_delay = 60.0
    stable_after = 60.0
    probe_interval = 5.0
    probe_timeout = 3.0
    probe_failures = 3
    stop_timeout = 5.0

    def __init__(self, cfg: EmbeddedConfig, gguf: Path, command: Sequence[str] = ()) -> None:
        self.cfg = cfg
        self.gguf = gguf
        self.port = cfg.port or free_port()
        self.api_base = f"http://127.0.0.1:{self.port}/v1"
        self.api_key = secrets.token_urlsafe(24)
        self.command = tuple(command) or (
            *(sys.executable, str(CHILD), "--model", str(gguf), "--port", str(self.port)),
            *("--threads", str(cfg.threads), "--ctx-size", str(cfg.ctx_size)),
        )
        self.process: asyncio.subprocess.Process | None = None
        self.output: deque[str] = deque(maxlen=OUTPUT_LINES)
        self.starts = 0
        """Children started so far (1 after ``start()``; each restart adds one)."""
        self.exits: list[str] = []
        """How each child ended, in order (for logs and tests)."""
        self.restart_delays: list[float] = []
        """The back-off before each restart, in order."""
        self.startup_seconds = 0.0
        """How long the last start took, spawn to healthy."""
        self.up = asyncio.Event()
        """Set while a child runs that has answered ``/health``."""
        self._session: aiohttp.ClientSession | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False

    def bind(self, chains: Mapping[str, ChainSpec]) -> dict[str, ChainSpec]:
        """The chains with this server's URL and key where they name the embedded model."""
        return bind(chains, self.api_base, self.api_key)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        """Start the child and wait until it is healthy, then supervise it."""
        self._stopping = False
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),  # each probe tests a new connection
            timeout=aiohttp.ClientTimeout(total=None),
        )
        try:
            await self._spawn()
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="embedded-supervisor")

    async def stop(self) -> None:
        """Stop supervising, end the child, release everything. Safe to call twice."""
        self._stopping = True
        self.up.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        await self._end_child()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def healthy(self) -> bool:
        """Whether the child answers ``/health`` with 200 within ``probe_timeout``."""
        if self._session is None:
            return False
        try:
            async with asyncio.timeout(self.probe_timeout):
                url = f"http://127.0.0.1:{self.port}/health"
                async with self._session.get(url) as response:
                    await response.read()
                    return response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    # -- internals ----------------------------------------------------------------------

    async def _spawn(self) -> None:
        started = time.monotonic()
        env = {**os.environ, API_KEY_VARIABLE: self.api_key}
        self.output.clear()
        self.process = process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,  # closes when the router dies: the child exits
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C at the router's terminal is for the router
        )
        self.starts += 1
        self._reader = asyncio.create_task(self._read_output(process), name="embedded-output")
        deadline = started + self.cfg.start_timeout
        while not await self.healthy():
            if process.returncode is not None:
                if process.stdin is not None:
                    process.stdin.close()
                await self._finish_reading()
                raise EmbeddedStartError(
                    f"embedded model server {describe_exit(process.returncode)} while "
                    f"loading {self.gguf}{self._tail()}"
                )
            if time.monotonic() >= deadline:
                await self._end_child()
                raise EmbeddedStartError(
                    f"embedded model server did not answer /health within "
                    f"{self.cfg.start_timeout:.3g}s{self._tail()}"
                )
            await asyncio.sleep(0.05)
        self.startup_seconds = time.monotonic() - started
        self.up.set()
        logger.info(
            "embedded model ready at %s (%s, %d threads, pid %d) in %.2fs",
            self.api_base,
            self.gguf.name,
            self.cfg.threads,
            process.pid,
            self.startup_seconds,
        )

    async def _supervise(self) -> None:
        delay = self.restart_delay
        while True:
            ran_from = time.monotonic()
            reason = await self._watch()
            self.up.clear()
            self.exits.append(reason)
            if time.monotonic() - ran_from >= self.stable_after:
                delay = self.restart_delay
            self.restart_delays.append(delay)
            logger.error(
                "embedded model server %s; restarting it in %.3gs%s", reason, delay, self._tail()
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_restart_delay)
            try:
                await self._spawn()
            except EmbeddedStartError as exc:
                logger.error("%s", exc)

    async def _watch(self) -> str:
        """Wait until the child ends, or kill it once it stops answering; say how it ended."""
        process = self.process
        if process is None or process.returncode is not None:
            code = process.returncode if process is not None else None
            return describe_exit(code) if code is not None else "is not running"
        exited = asyncio.ensure_future(process.wait())
        failures = 0
        try:
            while True:
                done, _ = await asyncio.wait({exited}, timeout=self.probe_interval)
                if done:
                    await self._finish_reading()
                    return describe_exit(exited.result())
                failures = 0 if await self.healthy() else failures + 1
                if failures >= self.probe_failures:
                    await self._end_child(kill=True)
                    return (
                        f"did not answer /health {failures} times in a row "
                        f"(hung or stopped): killed it (pid {process.pid})"
                    )
        finally:
            exited.cancel()

    async def _end_child(self, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                if kill:
                    process.kill()
                else:
                    process.terminate()
                    os.kill(process.pid, signal.SIGCONT)  # a stopped child cannot act on SIGTERM
            try:
                await asyncio.wait_for(process.wait(), self.stop_timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process is not None and process.stdin is not None:
            process.stdin.close()
        await self._finish_reading()

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.output.append(line)
            child_logger.debug("%s", line)

    async def _finish_reading(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                await asyncio.wait_for(reader, 2.0)
            except (TimeoutError, asyncio.CancelledError):
                reader.cancel()

    def _tail(self) -> str:
        lines = [line for line in self.output if line.strip()][-8:]
        return ("; last output:\n  " + "\n  ".join(lines)) if lines else ""
