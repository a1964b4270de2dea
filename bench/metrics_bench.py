"""Metrics never slow a call: measured.

    .venv/bin/python bench/metrics_bench.py            # ~2-3 minutes; writes bench/results/
    .venv/bin/python bench/metrics_bench.py --quick    # fewer calls, for a smoke run

Everything runs on 127.0.0.1: a real server (App, grpc.aio, port 0), a fake Ollama
answering at once (FakeUpstream; ``--provider scripted`` uses the in-process
ScriptedProvider instead, which takes litellm's own cost out), and redis-server
started on a free port. Three measurements:

1. Route latency with Redis up vs down (nothing listening) vs blackholed (a listener
   that accepts and never answers), interleaved in rounds in one run, plus the
   in-process bus as a baseline: p50/p99 and the ratio to "up".
2. Event delivery delay to a watcher: Route on replica B, watcher on replica A (both
   sharing Redis); delay = time the watcher read the event - the event's own time.
   Also the in-process bus.
3. Watchers one replica sustains: Route p50 with 0/10/100/500 WatchMetrics streams
   open (read by a separate process), ratio to 0, and whether the watchers kept up.

Numbers from a shared 2-core machine are noisy: read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "client"), str(ROOT)]
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import grpc  # noqa: E402

from llm_router.v1 import router_pb2, router_pb2_grpc  # noqa: E402
from llm_router_server.app import App  # noqa: E402
from llm_router_server.config import Config, MetricsConfig, ServerConfig  # noqa: E402
from llm_router_server.providers.base import Provider  # noqa: E402
from llm_router_server.types import ChainSpec, Completion, ModelSpec  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.scripted_provider import ScriptedProvider  # noqa: E402
from tests.support.upstream import Answer, FakeUpstream  # noqa: E402
from tests.support.waiting import eventually  # noqa: E402

REQUEST = router_pb2.RouteRequest(
    messages=[router_pb2.Message(role="user", content="ping")], context="bench"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": pct(values, 0.50),
        "p99_ms": pct(values, 0.99),
        "mean_ms": round(statistics.fmean(values), 3),
    }


class Bench:
    def __init__(self, provider_kind: str) -> None:
        self.provider_kind = provider_kind
        self.upstream: FakeUpstream | None = None
        self.apps: list[App] = []
        self.channels: list[grpc.aio.Channel] = []

    def model_and_provider(self) -> tuple[ModelSpec, Provider | None]:
        if self.provider_kind == "scripted":
            return ModelSpec("local", timeout=5), ScriptedProvider(default=Completion("fine"))
        if self.upstream is None:
            self.upstream = FakeUpstream()
            self.upstream.default = Answer("fine", prompt_tokens=3, completion_tokens=1)
        model = ModelSpec("ollama_chat/qwen2.5:7b", timeout=5, api_base=self.upstream.url)
        return model, None

    async def start(self, metrics: MetricsConfig) -> tuple[App, router_pb2_grpc.RouterStub]:
        model, provider = self.model_and_provider()
        config = Config(
            server=ServerConfig(listen="127.0.0.1:0"),
            metrics=metrics,
            chains={"default": ChainSpec("default", (model,))},
        )
        app = App(config, provider=provider)
        port = await app.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.apps.append(app)
        self.channels.append(channel)
        stub = router_pb2_grpc.RouterStub(channel)
        for _ in range(20):  # warm up: connection, litellm's first-call costs
            await stub.Route(REQUEST, timeout=10)
        return app, stub

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        for app in self.apps:
            await app.stop(0)
        if self.upstream is not None:
            self.upstream.close()


async def timed_routes(stub: router_pb2_grpc.RouterStub, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        await stub.Route(REQUEST, timeout=10)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def redis_modes(bench: Bench, redis: RedisServer, rounds: int, per_round: int) -> Any:
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(4096)
    urls = {
        "up": redis.url,
        "down": f"redis://127.0.0.1:{free_port()}/0",
        "blackholed": f"redis://127.0.0.1:{hole.getsockname()[1]}/0",
        "in_process": "",
    }
    stubs = {}
    apps = {}
    for mode, url in urls.items():
        apps[mode], stubs[mode] = await bench.start(
            MetricsConfig(redis_url=url, replica_id=mode, buffer_size=100000)
        )
    samples: dict[str, list[float]] = {mode: [] for mode in urls}
    for _ in range(rounds):
        for mode, stub in stubs.items():
            samples[mode] += await timed_routes(stub, per_round)
    hole.close()
    result: dict[str, Any] = {}
    up = summary(samples["up"])
    for mode, values in samples.items():
        s: dict[str, Any] = summary(values)
        s["p50_ratio_to_up"] = round(s["p50_ms"] / up["p50_ms"], 3)
        s["p99_ratio_to_up"] = round(s["p99_ms"] / up["p99_ms"], 3)
        st = apps[mode].bus.stats()
        s["bus"] = {"published": st.published, "dropped": st.dropped, "buffered": st.buffered}
        result[mode] = s
    return result


async def delivery_delay(bench: Bench, redis_url: str, n: int) -> Any:
    result = {}
    for label, url in (("redis_cross_replica", redis_url), ("in_process", "")):
        if url:
            watched, _ = await bench.start(MetricsConfig(redis_url=url, replica_id="A"))
            _, stub = await bench.start(MetricsConfig(redis_url=url, replica_id="B"))
        else:
            watched, stub = await bench.start(MetricsConfig(replica_id="solo"))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{watched.port}")
        stream = router_pb2_grpc.RouterStub(channel).WatchMetrics(
            router_pb2.WatchMetricsRequest(contexts=["delay"])
        )
        await stream.read()  # the snapshot
        delays: list[float] = []

        async def read(stream: Any = stream, delays: list[float] = delays) -> None:
            while len(delays) < n:
                message = await stream.read()
                if message.WhichOneof("kind") == "event":
                    sent = message.event.time.ToNanoseconds() / 1e9
                    delays.append((time.time() - sent) * 1000)

        reader = asyncio.create_task(read())
        request = router_pb2.RouteRequest(messages=REQUEST.messages, context="delay")
        for _ in range(n):
            await stub.Route(request, timeout=10)
            await asyncio.sleep(0.005)
        await asyncio.wait_for(reader, 30)
        stream.cancel()
        await channel.close()
        result[label] = summary(delays)
    return result


WATCHER_CHILD = """
import asyncio, json, signal, sys, grpc
sys.path[:0] = {paths!r}
from llm_router.v1 import router_pb2, router_pb2_grpc

async def main(target, n):
    channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, n // 100))]
    counts = [0] * n
    missed = [0] * n
    async def watch(i):
        stub = router_pb2_grpc.RouterStub(channels[i % len(channels)])
        async for m in stub.WatchMetrics(router_pb2.WatchMetricsRequest()):
            counts[i] += m.WhichOneof("kind") == "event"
            missed[i] += m.missed_events
    tasks = [asyncio.create_task(watch(i)) for i in range(n)]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for t in tasks:
        t.cancel()
    print(json.dumps({{"events": counts, "missed": missed}}))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def watcher_scaling(bench: Bench, levels: list[int], n: int) -> Any:
    app, stub = await bench.start(MetricsConfig(replica_id="w", watcher_queue=1000))
    target = f"127.0.0.1:{app.port}"
    code = WATCHER_CHILD.format(paths=[str(ROOT / "client")])
    result: dict[str, Any] = {}
    base_p50 = None
    for level in levels:
        child = None
        if level:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, target, str(level), stdout=asyncio.subprocess.PIPE
            )
            await eventually(lambda level=level: app.bus.stats().watchers >= level, within=60)
        latencies = await timed_routes(stub, n)
        s: dict[str, Any] = summary(latencies)
        base_p50 = base_p50 or s["p50_ms"]
        s["p50_ratio_to_0"] = round(s["p50_ms"] / base_p50, 3)
        if child is not None:
            await asyncio.sleep(1.0)  # let the watchers drain
            child.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(child.communicate(), 60)
            got = json.loads(out)
            s["events_per_watcher_min"] = min(got["events"])
            s["events_per_watcher_expected"] = n
            s["missed_total"] = sum(got["missed"])
            await eventually(lambda: app.bus.stats().watchers == 0, within=30)
        result[str(level)] = s
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (smoke run)")
    parser.add_argument("--provider", choices=["upstream", "scripted"], default="upstream")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    rounds, per_round, delay_n, watch_n = (2, 25, 50, 100) if args.quick else (6, 100, 300, 400)
    levels = [0, 10, 100] if args.quick else [0, 10, 100, 500]
    results = asyncio.run(measure(args.provider, rounds, per_round, delay_n, watch_n, levels))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"metrics_bench_{args.provider}{'_quick' if args.quick else ''}.json"
    (out / name).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out / name}", file=sys.stderr)


async def measure(
    provider: str, rounds: int, per_round: int, delay_n: int, watch_n: int, levels: list[int]
) -> dict[str, Any]:
    bench = Bench(provider)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        try:
            started = time.monotonic()
            results: dict[str, Any] = {
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": f"{platform.node()} {os.cpu_count()} cores (shared: noisy)",
                "provider": provider,
                "route_latency_by_redis_state": await redis_modes(bench, redis, rounds, per_round),
                "event_delivery_delay": await delivery_delay(bench, redis.url, delay_n),
                "watchers": await watcher_scaling(bench, levels, watch_n),
            }
            results["took_s"] = round(time.monotonic() - started, 1)
        finally:
            await bench.close()
            redis.kill()
    return results


if __name__ == "__main__":
    main()
