"""The chain's refusal policy: a provider's safety refusal falls through, or stops the call."""

from __future__ import annotations

import pytest

from llm_router_server.errors import ProviderRefusalError, RefusedError
from llm_router_server.types import Category, Completion
from tests.support.routers import ask, called, scripted_router

pytestmark = pytest.mark.timeout(20)


async def test_safety_refusal_falls_through_by_default() -> None:
    router, _, _ = scripted_router({"local": [ProviderRefusalError("refusal")]})
    result = await router.route(ask())
    assert result.model_used == "haiku"
    assert result.attempts[0].category is Category.SAFETY_REFUSAL


async def test_safety_refusal_stops_the_call_when_the_policy_says_so() -> None:
    router, provider, _ = scripted_router(
        {"local": [ProviderRefusalError("refusal")]}, refusal_policy="stop"
    )
    with pytest.raises(RefusedError) as info:
        await router.route(ask())
    assert "refusal_policy 'stop'" in str(info.value)
    assert [a.category for a in info.value.attempts] == [Category.SAFETY_REFUSAL]
    assert called(provider) == ["local"]


async def test_text_refusal_still_falls_through_under_stop() -> None:
    router, _, _ = scripted_router(
        {"local": [Completion("I cannot do that.")]}, refusal_policy="stop"
    )
    result = await router.route(ask())
    assert result.model_used == "haiku"
    assert result.attempts[0].category is Category.REFUSAL
