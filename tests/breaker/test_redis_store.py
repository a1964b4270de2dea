"""The Redis-backed breaker store against a real ``redis-server`` that the tests start on a
free port: two replicas share each circuit; Redis dying lets calls through, and when it comes
back the circuits are shared again."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from llm_router_server.breaker.breaker import CircuitBreaker
from llm_router_server.breaker.redis_store import RedisBreakerStore
from llm_router_server.breaker.rules import Circuit, State, key_of
from llm_router_server.config.model import BreakerPolicy
from llm_router_server.errors import ProviderConnectionError
from llm_router_server.routing.chain import Router
from llm_router_server.types import Category, Completion
from tests.support.redis_server import RedisServer
from tests.support.routers import HAIKU, LOCAL, ask, build_router
from tests.support.scripted_provider import ScriptedProvider
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
POLICY = BreakerPolicy(failure_threshold=2, cool_down_seconds=30)
ASK = ask("hi")


@pytest.fixture
async def stores(redis_server: RedisServer) -> AsyncIterator[list[RedisBreakerStore]]:
    made: list[RedisBreakerStore] = []
    yield made
    for store in made:
        await store.aclose()


def replica(store: RedisBreakerStore, provider: ScriptedProvider) -> Router:
    """One replica's router: chain LOCAL, HAIKU; its breaker over ``store``."""
    return build_router(provider, (LOCAL, HAIKU), breaker=CircuitBreaker(store, POLICY))


def new_store(url: str, stores: list[RedisBreakerStore]) -> RedisBreakerStore:
    store = RedisBreakerStore.from_url(url)
    store.backoff_seconds = 0.2
    stores.append(store)
    return store


async def test_a_circuit_opened_by_one_replica_is_open_for_the_other(
    redis_server: RedisServer, stores: list[RedisBreakerStore]
) -> None:
    down = ProviderConnectionError("connection refused")
    a_provider = ScriptedProvider({"local": [down, down]}, default=Completion("ok"))
    b_provider = ScriptedProvider(default=Completion("ok"))
    a = replica(new_store(redis_server.url, stores), a_provider)
    b = replica(new_store(redis_server.url, stores), b_provider)
    for _ in range(2):
        await a.route(ASK)
    result = await b.route(ASK)
    assert result.attempts[0].category is Category.CIRCUIT_OPEN
    assert [m for m, _ in b_provider.calls] == ["haiku"]  # b never paid for the dead model
    async with redis.Redis.from_url(redis_server.url) as client:
        raw = await client.get("llm_router:breaker:local|")
    assert raw is not None and b'"open"' in raw


async def test_one_probe_across_replicas(
    redis_server: RedisServer, stores: list[RedisBreakerStore]
) -> None:
    store = new_store(redis_server.url, stores)
    past = time.time() - 1
    await store.update(key_of(LOCAL), lambda c: Circuit(State.OPEN, 2, past, past - 30, 0, 30))
    breakers = [CircuitBreaker(new_store(redis_server.url, stores), POLICY) for _ in range(6)]
    admissions = await asyncio.gather(*(b.admit(LOCAL, lease=5) for b in breakers))
    assert sum(a.allowed for a in admissions) == 1  # exactly one replica probes
    assert (await store.load(key_of(LOCAL))).state is State.HALF_OPEN


async def test_a_success_closes_and_deletes_the_key(
    redis_server: RedisServer, stores: list[RedisBreakerStore]
) -> None:
    store = new_store(redis_server.url, stores)
    await store.update(key_of(LOCAL), lambda c: Circuit(State.HALF_OPEN, 2, 0, 0, 0, 30))
    await CircuitBreaker(store, POLICY).record(LOCAL, None, healthy=True)
    async with redis.Redis.from_url(redis_server.url) as client:
        assert await client.exists("llm_router:breaker:local|") == 0


async def test_redis_killed_then_restarted(
    redis_server: RedisServer, stores: list[RedisBreakerStore]
) -> None:
    provider = ScriptedProvider(
        {"local": [ProviderConnectionError("refused")] * 10}, default=Completion("ok")
    )
    router = replica(new_store(redis_server.url, stores), provider)
    redis_server.kill()
    started = time.monotonic()
    for _ in range(4):  # Redis is down: the breaker lets calls through, quickly
        assert (await router.route(ASK)).model_used == "haiku"
    assert time.monotonic() - started < 5
    assert router.breaker.store_errors > 0
    assert [m for m, _ in provider.calls].count("local") == 4
    redis_server.start()  # same port, empty
    await asyncio.sleep(0.3)  # past the store's back-off
    for _ in range(2):
        await router.route(ASK)
    result = await router.route(ASK)
    assert result.attempts[0].category is Category.CIRCUIT_OPEN


async def test_an_unreadable_value_is_a_store_error_and_calls_go_through(
    redis_server: RedisServer, stores: list[RedisBreakerStore]
) -> None:
    async with redis.Redis.from_url(redis_server.url) as client:
        await client.set("llm_router:breaker:local|", "garbage")
    provider = ScriptedProvider(default=Completion("ok"))
    router = replica(new_store(redis_server.url, stores), provider)
    assert (await router.route(ASK)).model_used == "local"
    assert router.breaker.store_errors >= 1


async def test_the_app_shares_circuits_through_the_metrics_redis_url(
    redis_server: RedisServer,
) -> None:
    from llm_router_server.app import default_breaker_store
    from llm_router_server.config import Config, MetricsConfig

    shared = default_breaker_store(Config(metrics=MetricsConfig(redis_url=redis_server.url)))
    try:
        assert isinstance(shared, RedisBreakerStore)
    finally:
        await shared.aclose()
    alone = Config(
        metrics=MetricsConfig(redis_url=redis_server.url), breaker=BreakerPolicy(shared=False)
    )
    assert not isinstance(default_breaker_store(alone), RedisBreakerStore)
    assert not isinstance(default_breaker_store(Config()), RedisBreakerStore)


async def test_a_replica_sees_another_replicas_change_within_its_read_cache(
    redis_server: RedisServer, stores: list[RedisBreakerStore]
) -> None:
    """A closed circuit is re-read from Redis in the background once its last read is older
    than read_cache_seconds (no round trip on the Route path); another replica's change
    shows within that time plus one round trip."""
    down = ProviderConnectionError("connection refused")
    a_provider = ScriptedProvider({"local": [down, down]}, default=Completion("ok"))
    b_provider = ScriptedProvider(default=Completion("ok"))
    a = replica(new_store(redis_server.url, stores), a_provider)
    b = replica(new_store(redis_server.url, stores), b_provider)
    assert b.breaker.read_cache_seconds == 0.5
    assert (await b.route(ASK)).model_used == "local"  # b has read the closed circuit
    for _ in range(2):
        await a.route(ASK)  # a opens it
    assert (await b.route(ASK)).model_used == "local"  # b's read is still fresh
    await asyncio.sleep(0.6)
    assert (await b.route(ASK)).model_used == "local"  # served as known; refresh started
    await eventually(lambda: not b.breaker._refreshing, within=2)
    result = await b.route(ASK)
    assert result.attempts[0].category is Category.CIRCUIT_OPEN


async def test_a_blackholed_redis_holds_up_only_the_first_call(
    blackhole: int, stores: list[RedisBreakerStore]
) -> None:
    """Redis accepts connections and never answers: the first read of a circuit waits for
    the store's timeout; every later call is served from what is known, while refreshes
    keep failing in the background, back-off window after back-off window."""
    provider = ScriptedProvider(default=Completion("ok"))
    router = replica(new_store(f"redis://127.0.0.1:{blackhole}/0", stores), provider)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await router.route(ASK)
    assert loop.time() - started < 1.0  # the store's 0.25 s timeout, once
    slowest = 0.0
    for _ in range(15):  # 1.5 s: several back-off windows and refreshes
        started = loop.time()
        assert (await router.route(ASK)).model_used == "local"
        slowest = max(slowest, loop.time() - started)
        await asyncio.sleep(0.1)
    assert slowest < 0.1
    assert router.breaker.store_errors >= 2
