"""Staggered starts ("hedging"): run steps one after another, but start the next one
early when the current one has not finished after ``delay`` seconds.

``staggered`` is the chain's loop when a chain sets ``hedge_after_ms``: a step is
started when the previous one failed or when ``delay`` passed with no answer;
the first result that ``done`` accepts wins and every step still running is
cancelled (which cancels its upstream HTTP request). With ``delay`` infinite it
is the plain sequential loop, run inline in the caller's task: no task per step,
no ``asyncio.wait`` (measured: each costs the server extra event-loop turns per
Route; see the README's Performance section). Plain asyncio: no grpc, litellm
or redis.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def staggered(
    steps: Sequence[Callable[[], Awaitable[T]]],
    delay: float,
    done: Callable[[T], bool],
) -> T | None:
    """Run ``steps`` staggered by ``delay``; return the first result ``done`` accepts, or None.

    Steps that are still running when a winner is found, or when the caller is
    cancelled, are cancelled and awaited before this returns (or re-raises).
    """
    if not math.isfinite(delay):
        for step in steps:  # a cancelled caller cancels the step it is awaiting
            result = await step()
            if done(result):
                return result
        return None
    pending: set[asyncio.Task[T]] = set()
    started = 0
    try:
        while True:
            if started < len(steps) and not pending:
                pending.add(asyncio.ensure_future(steps[started]()))
                started += 1
            if not pending:
                return None
            wait = delay if started < len(steps) and math.isfinite(delay) else None
            finished, pending = await asyncio.wait(
                pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for task in finished:
                result = task.result()
                if done(result):
                    return result
            if not finished and started < len(steps):  # no answer after ``delay``: hedge
                pending.add(asyncio.ensure_future(steps[started]()))
                started += 1
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
