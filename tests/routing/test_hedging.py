"""Hedging: a slow model gets company after ``hedge_after_ms``; the first answer wins and the
loser is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from llm_router_server.types import Category
from tests.support.routers import DOWN, OK, ask, called, scripted_router
from tests.support.scripted_provider import Delay

pytestmark = pytest.mark.timeout(20)


async def test_hedging_starts_the_next_model_and_cancels_the_loser() -> None:
    router, provider, _ = scripted_router({"local": [Delay(5, OK)]}, hedge_after_ms=50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await router.route(ask())
    assert loop.time() - started < 2
    assert result.model_used == "haiku"
    assert [(a.model, a.category) for a in result.attempts] == [
        ("local", Category.CANCELLED),
        ("haiku", Category.NONE),
    ]
    assert result.attempts[0].reason == "another model answered first"
    assert provider.cancelled == ["local"]


async def test_hedging_keeps_a_fast_first_model_alone() -> None:
    router, provider, _ = scripted_router({"local": [Delay(0.01, OK)]}, hedge_after_ms=500)
    result = await router.route(ask())
    assert result.model_used == "local" and called(provider) == ["local"]


async def test_hedging_the_first_answer_wins_even_if_it_is_the_first_model() -> None:
    router, provider, _ = scripted_router(
        {"local": [Delay(0.15, OK)], "haiku": [Delay(2, OK)]}, hedge_after_ms=50
    )
    result = await router.route(ask())
    assert result.model_used == "local"
    assert [a.category for a in result.attempts] == [Category.NONE, Category.CANCELLED]
    assert provider.cancelled == ["haiku"]


async def test_hedging_goes_on_after_a_failure() -> None:
    router, provider, _ = scripted_router({"local": [DOWN]}, hedge_after_ms=1000)
    result = await router.route(ask())
    assert result.model_used == "haiku" and called(provider) == ["local", "haiku"]


async def test_caller_cancel_during_a_hedge_cancels_both() -> None:
    router, provider, _ = scripted_router(
        {"local": [Delay(5, OK)], "haiku": [Delay(5, OK)]}, hedge_after_ms=20
    )
    task = asyncio.ensure_future(router.route(ask()))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(provider.cancelled) == ["haiku", "local"]
