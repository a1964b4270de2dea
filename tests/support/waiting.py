"""Polling for state in another thread or process, where an asyncio.Event cannot reach."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(predicate: Callable[[], object], within: float = 5.0) -> None:
    """Wait until ``predicate()`` is truthy; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while not predicate():
        if loop.time() > give_up:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)
