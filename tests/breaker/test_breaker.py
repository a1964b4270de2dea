"""The circuit breaker on the chain alone (ScriptedProvider, a hand-driven clock; no gRPC, no
HTTP): when a circuit opens, probes, cool-downs, the last resort, and a failing store."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llm_router_server.breaker.rules import Circuit, State, Transition, key_of
from llm_router_server.breaker.store import BreakerStoreError, InMemoryBreakerStore
from llm_router_server.config.model import BreakerPolicy
from llm_router_server.errors import (
    AllModelsFailedError,
    ProviderAuthenticationError,
    ProviderContextWindowError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderRefusalError,
    ProviderTimeoutError,
)
from llm_router_server.types import Category, Completion, Outcome
from tests.support.routers import DOWN, HAIKU, LOCAL, OK, ask, called, scripted_router
from tests.support.scripted_provider import Delay, Step

pytestmark = pytest.mark.timeout(20)


async def test_three_failures_open_the_circuit_and_the_model_is_skipped_with_a_reason() -> None:
    seen: list[Transition] = []
    router, provider, _ = scripted_router({"local": [DOWN] * 3}, listener=seen.append)
    for _ in range(3):
        assert (await router.route(ask())).model_used == "haiku"
    result = await router.route(ask())
    assert result.model_used == "haiku"
    skipped = result.attempts[0]
    assert (skipped.model, skipped.outcome, skipped.category) == (
        "local",
        Outcome.SKIPPED,
        Category.CIRCUIT_OPEN,
    )
    assert "circuit open" in skipped.reason and "connection refused" in skipped.reason
    assert called(provider).count("local") == 3
    assert [(t.model, t.old, t.new) for t in seen] == [("local", State.CLOSED, State.OPEN)]
    assert router.breaker.transitions[("local", "open")] == 1


async def test_failures_must_be_consecutive() -> None:
    router, provider, _ = scripted_router({"local": [DOWN, DOWN, OK, DOWN, DOWN]})
    for _ in range(6):
        await router.route(ask())
    assert called(provider).count("local") == 6


async def test_after_the_cool_down_one_probe_closes_the_circuit() -> None:
    router, _, clock = scripted_router({"local": [DOWN] * 3})
    for _ in range(3):
        await router.route(ask())
    clock.now += 10.5
    result = await router.route(ask())
    assert result.model_used == "local"
    state = await router.breaker.store.load(key_of(LOCAL))
    assert state == Circuit()
    assert router.breaker.transitions[("local", "half_open")] == 1
    assert router.breaker.transitions[("local", "closed")] == 1


async def test_half_open_lets_one_probe_through_at_a_time() -> None:
    router, provider, clock = scripted_router({"local": [DOWN] * 3 + [Delay(0.3, OK)]})
    for _ in range(3):
        await router.route(ask())
    clock.now += 11
    probe, other = await asyncio.gather(router.route(ask()), router.route(ask()))
    assert probe.model_used == "local"
    assert other.attempts[0].category is Category.CIRCUIT_OPEN
    assert "probe" in other.attempts[0].reason
    assert called(provider).count("local") == 4


async def test_a_failed_probe_reopens_for_twice_as_long() -> None:
    router, provider, clock = scripted_router({"local": [DOWN] * 4})
    for _ in range(3):
        await router.route(ask())
    clock.now += 11
    await router.route(ask())  # the probe fails
    circuit = await router.breaker.store.load(key_of(LOCAL))
    assert circuit.state is State.OPEN and circuit.cool_down == 20
    clock.now += 15
    assert (await router.route(ask())).attempts[0].category is Category.CIRCUIT_OPEN
    assert called(provider).count("local") == 4


async def test_a_lost_probe_lease_expires() -> None:
    router, _, clock = scripted_router({})
    await router.breaker.store.update(
        key_of(LOCAL),
        lambda c: Circuit(State.HALF_OPEN, 3, probe_until=clock.now + 2, cool_down=10),
    )
    assert (await router.route(ask())).attempts[0].category is Category.CIRCUIT_OPEN
    clock.now += 3
    assert (await router.route(ask())).model_used == "local"


async def test_rate_limit_opens_at_once_for_retry_after() -> None:
    router, _, clock = scripted_router({"local": [ProviderRateLimitError("429", retry_after=42)]})
    first = await router.route(ask())
    assert first.attempts[0].category is Category.RATE_LIMITED
    circuit = await router.breaker.store.load(key_of(LOCAL))
    assert circuit.state is State.OPEN and circuit.open_until == clock.now + 42
    clock.now += 41
    assert (await router.route(ask())).attempts[0].category is Category.CIRCUIT_OPEN
    clock.now += 2
    assert (await router.route(ask())).model_used == "local"


async def test_rate_limit_without_retry_after_uses_the_cool_down_and_is_capped() -> None:
    policy = BreakerPolicy(cool_down_seconds=5, max_cool_down_seconds=60)
    router, _, clock = scripted_router(
        {"local": [ProviderRateLimitError("429"), ProviderRateLimitError("429", retry_after=1e6)]},
        policy=policy,
    )
    await router.route(ask())
    assert (await router.breaker.store.load(key_of(LOCAL))).cool_down == 5
    clock.now += 6
    await router.route(ask())
    assert (await router.breaker.store.load(key_of(LOCAL))).cool_down == 60


async def test_authentication_error_opens_at_once_and_is_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router, _, _ = scripted_router(
        {"local": [ProviderAuthenticationError("HTTP 401", status_code=401)]}
    )
    with caplog.at_level(logging.ERROR, "llm_router.breaker"):
        result = await router.route(ask())
    assert result.attempts[0].category is Category.AUTHENTICATION
    assert any("API key" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert (await router.breaker.store.load(key_of(LOCAL))).state is State.OPEN


@pytest.mark.parametrize(
    "step",
    [
        ProviderContextWindowError("too long", status_code=400),
        ProviderRefusalError("content policy"),
        Completion("I cannot help with that."),
        Completion(""),
    ],
    ids=["context-window", "safety", "text-refusal", "empty"],
)
async def test_outcomes_that_say_nothing_bad_about_health_never_open(step: Step) -> None:
    router, provider, _ = scripted_router({"local": [step] * 5})
    for _ in range(5):
        await router.route(ask())
    assert called(provider).count("local") == 5


async def test_context_window_skips_to_the_next_model_without_retrying() -> None:
    router, provider, _ = scripted_router(
        {"local": [ProviderContextWindowError("too long", status_code=400)]}
    )
    result = await router.route(ask())
    assert [a.category for a in result.attempts] == [Category.CONTEXT_WINDOW, Category.NONE]
    assert called(provider) == ["local", "haiku"]


async def test_a_silent_upstream_is_not_retried_on_the_same_model() -> None:
    router, provider, _ = scripted_router({"local": [Delay(5, OK)]})
    result = await router.route(ask())
    assert [a.category for a in result.attempts] == [Category.TIMEOUT, Category.NONE]
    assert called(provider) == ["local", "haiku"]


async def test_when_every_circuit_is_open_the_least_recently_failed_model_is_tried() -> None:
    router, _, clock = scripted_router(
        {"local": [DOWN] * 3, "haiku": [DOWN] * 3 + [OK]},
        policy=BreakerPolicy(failure_threshold=3, cool_down_seconds=100),
    )
    for _ in range(3):  # local opens first (it fails first in each call), then haiku
        with pytest.raises(AllModelsFailedError):
            await router.route(ask())
        clock.now += 1
    local = await router.breaker.store.load(key_of(LOCAL))
    haiku = await router.breaker.store.load(key_of(HAIKU))
    assert local.state is haiku.state is State.OPEN and local.opened_at <= haiku.opened_at
    result = await router.route(ask())
    assert [a.category for a in result.attempts] == [
        Category.CIRCUIT_OPEN,
        Category.CIRCUIT_OPEN,
        Category.NONE,
    ]
    # Both opened in the same call, at the same time: the chain's order breaks the tie.
    assert result.model_used == "local"


async def test_last_resort_is_the_earliest_opened_circuit() -> None:
    router, provider, clock = scripted_router({}, policy=BreakerPolicy(cool_down_seconds=100))
    store = router.breaker.store
    await store.update(key_of(LOCAL), lambda c: Circuit(State.OPEN, 3, clock.now + 50, clock.now))
    await store.update(
        key_of(HAIKU), lambda c: Circuit(State.OPEN, 3, clock.now + 90, clock.now - 40)
    )
    result = await router.route(ask())
    assert result.model_used == "haiku"
    assert called(provider) == ["haiku"]
    assert (await store.load(key_of(HAIKU))) == Circuit()  # its success closed it


async def test_when_all_open_can_fail_instead() -> None:
    router, provider, clock = scripted_router({}, policy=BreakerPolicy(when_all_open="fail"))
    for spec in (LOCAL, HAIKU):
        await router.breaker.store.update(
            key_of(spec), lambda c: Circuit(State.OPEN, 3, clock.now + 50, clock.now)
        )
    with pytest.raises(AllModelsFailedError) as info:
        await router.route(ask())
    assert [a.category for a in info.value.attempts] == [Category.CIRCUIT_OPEN] * 2
    assert provider.calls == []


async def test_a_failing_last_resort_stays_open_from_now() -> None:
    router, _, clock = scripted_router({"local": [DOWN]}, models=(LOCAL,))
    await router.breaker.store.update(
        key_of(LOCAL), lambda c: Circuit(State.OPEN, 3, clock.now + 50, clock.now, cool_down=50)
    )
    with pytest.raises(AllModelsFailedError):
        await router.route(ask())
    circuit = await router.breaker.store.load(key_of(LOCAL))
    assert circuit.state is State.OPEN and circuit.open_until == clock.now + 10
    assert circuit.opened_at == clock.now  # it is now the most recently failed


class BrokenStore(InMemoryBreakerStore):
    async def load(self, key: str) -> Circuit:
        raise BreakerStoreError("redis is down")

    async def update(self, key: str, change: object) -> tuple[Circuit, Circuit]:
        raise BreakerStoreError("redis is down")


async def test_a_failing_store_lets_calls_through() -> None:
    router, provider, _ = scripted_router({"local": [DOWN] * 5}, store=BrokenStore())
    for _ in range(5):
        await router.route(ask())
    assert called(provider).count("local") == 5
    assert router.breaker.store_errors > 0


async def test_the_breaker_can_be_switched_off() -> None:
    router, provider, _ = scripted_router(
        {"local": [DOWN] * 5}, policy=BreakerPolicy(enabled=False)
    )
    for _ in range(5):
        await router.route(ask())
    assert called(provider).count("local") == 5


@pytest.mark.parametrize(
    "error",
    [ProviderTimeoutError("t"), ProviderOverloadedError("HTTP 503", status_code=503), DOWN],
)
async def test_every_failure_class_counts(error: Step) -> None:
    router, provider, _ = scripted_router({"local": [error] * 4})
    for _ in range(4):
        await router.route(ask())
    assert called(provider).count("local") == 3
