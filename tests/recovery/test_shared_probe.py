"""Background probes across replicas and over a server's life, at the wire.

Two servers sharing a real ``redis-server`` (their breaker is shared through
``metrics.redis_url``) send one probe per interval between them, not one each, and both
come back to the local model soon after it recovers. Probes stop on shutdown, and the
ones still waiting on a silent model are cancelled upstream.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from itertools import pairwise

import pytest

from llm_router_server.config import MetricsConfig
from tests.recovery.test_come_back import INTERVAL, cloud
from tests.recovery.traffic import back_after, drive, probes
from tests.support.redis_server import RedisServer
from tests.support.server import Serve, ollama
from tests.support.upstream import FakeUpstream, Hang, HttpError
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
async def test_two_replicas_sharing_redis_probe_once_per_interval_not_twice(
    serve: Serve, upstream: Callable[[], FakeUpstream], redis_server: RedisServer
) -> None:
    local, fallback = upstream(), upstream()
    models = [ollama(local), cloud(fallback)]
    shared = MetricsConfig(redis_url=redis_server.url)
    a = await serve(models, metrics=shared)
    b = await serve(models, metrics=shared)
    outage = 5.0
    recovered = local.outage(HttpError(503), outage)
    served_a, served_b = await asyncio.gather(drive(a, recovered + 3.0), drive(b, recovered + 3.0))

    seen = probes(local, before=recovered)
    # One replica alone would send about outage / interval; two replicas, no more.
    assert 2 <= len(seen) <= outage / INTERVAL + 1
    assert all(later - earlier >= 0.8 * INTERVAL for earlier, later in pairwise(seen))
    sent = a.app.prober.sent["ollama_chat/qwen2.5:7b"] + b.app.prober.sent["ollama_chat/qwen2.5:7b"]
    assert sent == len(probes(local))
    for served in (served_a, served_b):
        assert all(s.model for s in served)
        assert back_after(served, recovered) <= 2.0
        later = [s for s in served if s.sent >= recovered + 2.0]
        assert later and all(s.local for s in later)


async def test_probes_stop_on_shutdown_and_waiting_ones_are_cancelled(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, fallback = upstream(), upstream()
    server = await serve([ollama(local, timeout=1.0), cloud(fallback)])
    local.default = Hang()
    await drive(server, time.monotonic() + 0.5)  # the first call's timeout opens the circuit
    await eventually(lambda: len(probes(local)) >= 2, within=5.0)
    await server.app.stop(0)
    sent = len(probes(local))
    assert await local.wait_for_disconnects(1 + sent, 3.0)  # the call and every probe
    await asyncio.sleep(2.5 * INTERVAL)
    assert len(probes(local)) == sent
    assert server.app.prober._task is None
