"""Three replicas (``llm-router serve`` processes) sharing one real Redis, as a Deployment
with three pods runs them: a client given the three addresses spreads its calls over all
of them; a circuit one replica opens is respected by the other two; a WatchMetrics stream
on any replica sees every call."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_router import AsyncRouterClient, RouteEvent
from tests.support.processes import ServerProcess
from tests.support.redis_server import RedisServer
from tests.support.serve_upstream import chooser
from tests.support.upstream import Behaviour, FakeUpstream, HttpError

pytestmark = pytest.mark.timeout(180)
LOCAL, CLAUDE = "ollama_chat/qwen2.5:7b", "anthropic/claude-haiku-4-5-20251001"
CALLS = 30


@pytest.fixture
def fake_models(upstream: Callable[[], FakeUpstream]) -> FakeUpstream:
    up = upstream()
    up.choose = chooser("ok")
    return up


@pytest.fixture
def replicas(
    redis_server: RedisServer, fake_models: FakeUpstream, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    """r1, r2, r3: one configuration but the replica id, one Redis, one fake upstream."""
    up = fake_models
    launched = []
    for name in ("r1", "r2", "r3"):
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f"""
[server]
listen = "127.0.0.1:0"
grace_seconds = 2

[metrics]
redis_url = "{redis_server.url}"
replica_id = "{name}"

[breaker]
failure_threshold = 2
cool_down_seconds = 120

[chains.default]
models = [
  {{ model = "{LOCAL}", timeout = 10, api_base = "{up.url}" }},
  {{ model = "{CLAUDE}", timeout = 10, api_base = "{up.url}" }},
]
"""
        )
        launched.append(ServerProcess(config))
    try:
        yield [replica.wait_logged() for replica in launched]
    finally:
        for replica in launched:
            replica.stop()


async def watch_events(
    target: str, context: str, total: int, ready: asyncio.Event
) -> list[RouteEvent]:
    """The first ``total`` events of ``context`` a WatchMetrics stream on ``target`` sees."""
    seen: list[RouteEvent] = []
    async with AsyncRouterClient(target) as client:
        messages: AsyncIterator[object] = client.watch(contexts=[context])
        async for message in messages:
            ready.set()  # the first message (a snapshot) means the stream is open
            if isinstance(message, RouteEvent):
                seen.append(message)
                if len(seen) == total:
                    break
    return seen


async def warm_up(client: AsyncRouterClient, observer: str, n: int) -> None:
    """Call through ``client`` until each of the ``n`` replicas served one call (seen by a
    watcher on ``observer``): round-robin only uses the connections that are up, and the
    first calls come before all of them are."""
    replicas: set[str] = set()
    async with AsyncRouterClient(observer) as watcher, asyncio.timeout(60):
        events = watcher.watch(contexts=["warm-up"])
        await anext(events)  # the snapshot: the stream is open
        while len(replicas) < n:
            await client.route([{"role": "user", "content": "warm up"}], context="warm-up")
            async for message in events:
                if isinstance(message, RouteEvent):
                    replicas.add(message.replica_id)
                    break
        await events.aclose()


async def test_three_replicas_share_calls_circuits_and_events(
    replicas: list[ServerProcess], fake_models: FakeUpstream
) -> None:
    up = fake_models
    targets = [r.target for r in replicas]
    opened = [asyncio.Event() for _ in targets]
    watchers = [
        asyncio.create_task(watch_events(t, "spread", CALLS, ready))
        for t, ready in zip(targets, opened, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 60)

    # 1. One client, the three addresses: once its connections are up, the calls go
    #    round-robin over every replica.
    async with AsyncRouterClient(",".join(targets)) as client:
        await warm_up(client, targets[0], len(targets))
        for i in range(CALLS):
            await client.route([{"role": "user", "content": f"call {i}"}], context="spread")
    seen = await asyncio.wait_for(asyncio.gather(*watchers), 60)
    spread = Counter(e.replica_id for e in seen[0])
    print(f"\n{CALLS} calls over 3 replicas: {dict(sorted(spread.items()))}")
    assert spread == {"r1": 10, "r2": 10, "r3": 10}

    # 2. A watcher on any replica saw every call, whichever replica served it.
    ids = [{e.event_id for e in events} for events in seen]
    assert len(ids[0]) == CALLS and ids[0] == ids[1] == ids[2]

    # 3. The local model goes down. r1 opens its circuit after two failures (the
    #    threshold); r2 and r3 then skip the model by r1's verdict, before they have
    #    failed twice themselves. (Each may still send one call, as its cached view of a
    #    shared circuit can be older than the change: it is refreshed on use.)
    up.choose = local_down
    async with AsyncRouterClient(targets[0]) as r1:
        for _ in range(2):
            assert (await r1.route([{"role": "user", "content": "down"}])).model_used == CLAUDE
    for target in targets[1:]:
        async with AsyncRouterClient(target) as other:
            outcomes = []
            for _ in range(3):
                result = await other.route([{"role": "user", "content": "down?"}])
                assert result.model_used == CLAUDE
                local = result.attempts[0]
                assert local.model == LOCAL
                outcomes.append((local.outcome, local.reason_category))
        print(f"{target}: local model after r1 opened its circuit: {outcomes}")
        assert outcomes[1:] == [("skipped", "circuit_open")] * 2, outcomes


def local_down(path: str, body: Any) -> Behaviour | None:
    """The local model's calls fail with HTTP 500; Claude answers."""
    if path in ("/api/chat", "/api/generate"):
        return HttpError(500)
    behaviour: Behaviour | None = chooser("ok")(path, body)
    return behaviour
