"""The per-model concurrency limit: a saturated model is skipped, not queued."""

from __future__ import annotations

import asyncio

import pytest

from llm_router_server.types import Category, ModelSpec, Outcome
from tests.support.routers import HAIKU, OK, ask, scripted_router
from tests.support.scripted_provider import Delay

pytestmark = pytest.mark.timeout(20)


async def test_a_saturated_model_is_skipped_not_queued() -> None:
    local = ModelSpec("local", timeout=2.0, max_concurrency=1)
    router, _, _ = scripted_router({"local": [Delay(0.3, OK)]}, models=(local, HAIKU))
    first, second = await asyncio.gather(router.route(ask()), router.route(ask()))
    assert first.model_used == "local"
    assert second.model_used == "haiku"
    assert (second.attempts[0].outcome, second.attempts[0].category) == (
        Outcome.SKIPPED,
        Category.SATURATED,
    )
    assert router.limiter.in_flight == {}
    assert (await router.route(ask())).model_used == "local"  # the slot was released
