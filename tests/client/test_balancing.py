"""Several targets, or one DNS name with several addresses: calls are spread round-robin
over every replica, and a replica that goes away is skipped."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from llm_router import AsyncRouterClient, Connection, RouterClient
from llm_router_server.app import App
from llm_router_server.config import Config
from tests.support.apps import StartApp, chain
from tests.support.server import ollama
from tests.support.upstream import Answer, FakeUpstream

pytestmark = pytest.mark.timeout(60)
HI = [{"role": "user", "content": "hi"}]


async def replicas(
    start_app: StartApp, upstream: Callable[[], FakeUpstream], n: int = 3
) -> list[tuple[App, str]]:
    """``n`` servers whose model answers with the server's name, ``r0``, ``r1``, ..."""
    started = []
    for i in range(n):
        up = upstream()
        up.default = Answer(f"r{i}")
        started.append(await start_app(Config(chains=chain(ollama(up)))))
    return started


async def test_a_target_list_spreads_calls_over_every_replica_and_skips_a_stopped_one(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    started = await replicas(start_app, upstream)
    async with AsyncRouterClient(",".join(t for _, t in started)) as client:
        await warm_up(client, 3)
        spread = Counter([(await client.route(HI, timeout=20)).content for _ in range(30)])
        assert spread == {"r0": 10, "r1": 10, "r2": 10}, spread
        # r1 goes away: every call still succeeds, on the other two.
        await started[1][0].stop(0)
        after = Counter([(await client.route(HI, timeout=20)).content for _ in range(20)])
    assert sorted(after) == ["r0", "r2"], after


async def warm_up(client: AsyncRouterClient, n: int) -> None:
    """Call until each of the ``n`` replicas answered once: round-robin only uses the
    connections that are up, and the first calls come before all of them are."""
    seen: set[object] = set()
    async with asyncio.timeout(10):
        while len(seen) < n:
            seen.add((await client.route(HI, timeout=20)).content)


async def test_host_names_in_a_list_are_resolved_and_balanced(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    started = await replicas(start_app, upstream, 2)
    named = ",".join(t.replace("127.0.0.1", "localhost") for _, t in started)

    def calls() -> Counter[object]:
        with RouterClient(named) as client:
            seen = set()
            while len(seen) < 2:  # warm up, as above (the test's timeout bounds it)
                seen.add(client.route(HI, timeout=20).content)
            return Counter([client.route(HI, timeout=20).content for _ in range(10)])

    spread = await asyncio.to_thread(calls)
    assert spread == {"r0": 5, "r1": 5}, spread


async def test_a_dns_uri_is_dialled_as_given(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    [(_, target)] = await replicas(start_app, upstream, 1)
    async with AsyncRouterClient(f"dns:///{target}") as client:
        assert (await client.route(HI, timeout=20)).content == "r0"


def test_target_lists_become_grpc_address_lists() -> None:
    target, options = Connection("127.0.0.1:1, 127.0.0.2:2").grpc_target()
    assert target == "ipv4:127.0.0.1:1,127.0.0.2:2"
    assert ("grpc.default_authority", "127.0.0.1:1") in options
    assert ("grpc.lb_policy_name", "round_robin") in options
    assert Connection("[::1]:1,[::1]:2").grpc_target()[0] == "ipv6:[::1]:1,[::1]:2"
    assert Connection("dns:///router.internal:50051").grpc_target()[0] == (
        "dns:///router.internal:50051"
    )
    for bad, message in [
        ("127.0.0.1:1,[::1]:2", "mix IPv4 and IPv6"),
        ("127.0.0.1:1,dns:///x:2", "host:port entries only"),
        ("127.0.0.1:1,nowhere", "is not host:port"),
    ]:
        with pytest.raises(ValueError, match=message):
            Connection(bad).grpc_target()
