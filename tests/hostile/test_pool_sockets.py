"""The worker pool closes every socket it makes, whichever event loop started or used it:
a pool (or an App using the process's shared pool) started on one loop that ends while
workers are still being forked, then used from fresh loops, leaves no socket to the garbage
collector (which would warn ``ResourceWarning: unclosed <socket.socket ...>``)."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import warnings
from collections.abc import Iterator

import pytest

from llm_router_server.app import App
from llm_router_server.config import Config, ServerConfig
from llm_router_server.routing.validation.pool import WorkerPool
from llm_router_server.routing.validation.worker import CheckSchema
from llm_router_server.types import ChainSpec, ModelSpec

pytestmark = pytest.mark.timeout(120)
ROUNDS = 4


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle() -> None:
    """Let forks still in flight end (their workers are killed then), then collect."""
    for thread in threading.enumerate():
        if thread.name == "validation-fork":
            thread.join(30)
    gc.collect()


@pytest.fixture
def resource_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield caught


def unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_pool_whose_loops_end_mid_start_closes_every_socket(
    resource_warnings: list[warnings.WarningMessage],
) -> None:
    gc.collect()  # what earlier tests left is not counted as this pool's
    fds = open_fds()
    pool = WorkerPool(2)

    async def start_and_leave() -> None:
        pool.start(pool.size)  # the loop ends while both workers are being forked

    async def use() -> None:
        await pool.run(CheckSchema('{"type": "object"}'), 30.0)

    try:
        for _ in range(ROUNDS):
            asyncio.run(start_and_leave())
            asyncio.run(use())
    finally:
        pool.close()
    settle()
    assert unclosed(resource_warnings) == []
    assert open_fds() <= fds  # none of the pool's sockets is left open


def test_apps_started_and_stopped_on_fresh_loops_leave_no_socket_unclosed(
    resource_warnings: list[warnings.WarningMessage], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    model = ModelSpec("ollama_chat/qwen2.5:7b", timeout=1.0, api_base="http://127.0.0.1:9")
    config = Config(
        server=ServerConfig(listen="127.0.0.1:0"),
        chains={"default": ChainSpec("default", (model,))},
    )

    async def start_and_stop(stop_at_once: bool) -> None:
        apps = [App(config) for _ in range(3)]
        for app in apps:
            await app.start()
        if not stop_at_once:
            await asyncio.sleep(0.05)
        for app in apps:
            await app.stop(0)

    for i in range(ROUNDS):
        asyncio.run(start_and_stop(stop_at_once=i % 2 == 0))
    settle()
    assert unclosed(resource_warnings) == []
