"""Load: 1,000 concurrent Routes against a fake upstream leave memory and open file
descriptors where they were; SIGTERM during load drains every accepted call and loses none of
their events. Longer variants run with ``--run-slow``."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server.config.model import MetricsConfig
from llm_router_server.metrics.redis_bus import RedisMetricsBus
from llm_router_server.metrics.redis_codec import STREAM_KEY
from tests.support.fixtures import Upstream
from tests.support.processes import ServerProcess, write_config
from tests.support.redis_server import RedisServer
from tests.support.server import HI, Running, Serve, ollama
from tests.support.upstream import Answer, FakeUpstream, Slow
from tests.support.waiting import eventually


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def burst(server: Running, n: int) -> float:
    started = time.monotonic()
    replies = await asyncio.gather(*(server.stub.Route(HI, timeout=120) for _ in range(n)))
    assert all(r.raw_text == "ok" for r in replies)
    return time.monotonic() - started


async def run_rounds(serve: Serve, upstream: Upstream, rounds: int) -> None:
    # Slow answers while warming: all 1,000 calls are in flight at once, so the upstream
    # connection pool fills up to its limit however busy the machine is.
    up = upstream(Slow(1.0, Answer("ok")))
    server = await serve([ollama(up, timeout=60)], server={"grace_seconds": 5})
    await burst(server, 1)  # the process's first litellm call does its lazy imports
    await burst(server, 1000)  # warm: pools and caches fill up here
    up.default = Answer("ok")
    fds, rss = open_fds(), rss_mb()
    times = [await burst(server, 1000) for _ in range(rounds)]
    await asyncio.sleep(0.5)
    grown_fds, grown_rss = open_fds() - fds, rss_mb() - rss
    print(
        f"\n1000 concurrent Routes x {rounds}: {', '.join(f'{t:.1f}s' for t in times)}; "
        f"fds {fds} -> {fds + grown_fds}; RSS {rss:.0f} MB -> {rss + grown_rss:.0f} MB"
    )
    # A leak would grow with the calls (1,000 a round); a few more pooled keep-alive
    # connections, or sockets of earlier tests closing late, are not one.
    assert grown_fds <= 50
    assert grown_rss <= 60 * rounds
    assert len(up.chat_requests()) == 1000 * (rounds + 1) + 1
    assert server.app.bus.published == 1000 * (rounds + 1) + 1  # type: ignore[attr-defined]


@pytest.mark.timeout(300)
async def test_a_thousand_concurrent_routes_leave_fds_and_memory_stable(
    serve: Serve, upstream: Upstream
) -> None:
    await run_rounds(serve, upstream, rounds=1)


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_ten_rounds_of_a_thousand_concurrent_routes(serve: Serve, upstream: Upstream) -> None:
    await run_rounds(serve, upstream, rounds=10)


async def sigterm_during_load(tmp_path: Path, up: FakeUpstream, n: int) -> None:
    config = write_config(tmp_path, up, timeout=10)
    async with ServerProcess(config) as server:
        proc = server.process
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            watch = stub.WatchMetrics(router_pb2.WatchMetricsRequest(), timeout=60)
            events: list[router_pb2.RouteEvent] = []

            async def read() -> None:
                try:
                    async for message in watch:
                        if message.HasField("event"):
                            events.append(message.event)
                except grpc.aio.AioRpcError:
                    pass  # the stream ends when the server stops

            reader = asyncio.ensure_future(read())
            await asyncio.sleep(0.2)
            calls = [stub.Route(HI, timeout=30) for _ in range(n)]
            done = asyncio.ensure_future(asyncio.gather(*calls, return_exceptions=True))
            await eventually(lambda: len(up.chat_requests()) >= n // 2, within=30)
            accepted = len(up.chat_requests())
            proc.send_signal(signal.SIGTERM)
            results = await done
            await asyncio.wait_for(reader, 15)
        ok = [r for r in results if isinstance(r, router_pb2.RouteResponse)]
        failed = [r for r in results if not isinstance(r, router_pb2.RouteResponse)]
        codes = sorted({e.code().name for e in failed if isinstance(e, grpc.aio.AioRpcError)})
        assert all(isinstance(e, grpc.aio.AioRpcError) for e in failed)
        # Calls that arrived after SIGTERM are refused (the server no longer takes calls).
        assert set(codes) <= {"UNAVAILABLE", "CANCELLED"}, codes
        assert len(ok) >= accepted  # every call in flight at SIGTERM was answered
        assert len(up.chat_requests()) == len(ok)  # no call was cut off once it had started
        ok_events = [e for e in events if e.status == router_pb2.ROUTE_STATUS_OK]
        assert len(ok_events) == len(ok)  # no event of an answered call was lost
        assert await asyncio.to_thread(proc.wait, 20) == 0
        print(
            f"\nSIGTERM under load: {accepted} in flight at SIGTERM, {len(ok)} answered, "
            f"{len(failed)} refused ({', '.join(codes)}), {len(ok_events)} OK events"
        )


@pytest.mark.timeout(120)
async def test_sigterm_during_load_drains_accepted_calls_and_keeps_their_events(
    tmp_path: Path, upstream: Upstream
) -> None:
    up = upstream(Slow(1.0, Answer("drained")))
    await sigterm_during_load(tmp_path, up, 200)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_sigterm_during_heavy_load(tmp_path: Path, upstream: Upstream) -> None:
    up = upstream(Slow(2.0, Answer("drained")))
    await sigterm_during_load(tmp_path, up, 1000)


@pytest.mark.timeout(180)
async def test_redis_killed_and_restarted_during_load_loses_no_call_and_no_event(
    serve: Serve, upstream: Upstream, redis_server: RedisServer
) -> None:
    """1,000 concurrent Routes while Redis (metrics bus and shared breaker) is killed and
    started again: every call is answered, and every event reaches the Redis stream once
    Redis is back (the publish buffer holds them meanwhile)."""
    up = upstream(Slow(0.3, Answer("ok")))
    server = await serve(
        [ollama(up, timeout=60)],
        metrics=MetricsConfig(redis_url=redis_server.url, buffer_size=10000),
    )
    await burst(server, 1)
    calls = asyncio.gather(*(server.stub.Route(HI, timeout=120) for _ in range(1000)))
    await eventually(lambda: len(up.chat_requests()) >= 200, within=60)
    redis_server.kill()
    await asyncio.sleep(0.5)
    redis_server.start()
    replies = await calls
    assert all(r.raw_text == "ok" for r in replies)
    bus = server.app.bus
    assert isinstance(bus, RedisMetricsBus)
    await eventually(lambda: bus.sent == 1001, within=30)
    assert bus.dropped == 0
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        # The stream restarted empty with Redis (no persistence): it holds what was sent
        # after the restart, i.e. at least the events buffered while Redis was down.
        held = await client.xlen(STREAM_KEY)
    finally:
        await client.aclose()
    assert 0 < held <= 1001
    print(f"\nRedis killed under load: 1000 answered, {bus.sent} events sent, {held} after restart")
