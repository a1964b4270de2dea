"""The Redis metrics bus's own CPU per event, measured in this process.

    .venv/bin/python -m bench.publisher_cpu            # ~20 s; needs redis-server on PATH

A ``RedisMetricsBus`` (publisher and subscriber, no watcher) publishes Route-like events
to a real redis-server on a free port, ``burst`` events per event-loop turn (1 is a
sequential caller, 16 and 64 are busy servers), in rounds that alternate with the
in-process bus doing the same; the difference of this process's CPU time per event is
what Redis costs the server. ``encode_us`` is the part the publisher measures itself
(summing counters and writing the JSON of a batch, per event).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from llm_router_server.metrics.bus import MetricsBus
from llm_router_server.metrics.memory import InMemoryMetricsBus
from llm_router_server.metrics.redis_bus import RedisMetricsBus
from llm_router_server.types import Attempt, Category, Outcome, RouteEvent, RouteStatus, Usage
from tests.support.redis_server import RedisServer

MODEL = "ollama_chat/qwen2.5:7b"


def route_event(i: int) -> RouteEvent:
    """An event like the bench's Route calls make: one model, answered."""
    attempt = Attempt(MODEL, Outcome.SUCCESS, Category.NONE, "", 1.2 + i % 7, Usage(12, 3, 15))
    snapshot = {MODEL: {"success": i, "fallback": 0, "error": 0}}
    return RouteEvent(
        time.time(), RouteStatus.OK, "route", "bench", MODEL, 1.5, (attempt,), snapshot
    )


async def drained(bus: MetricsBus) -> None:
    while bus.stats().buffered:  # noqa: ASYNC110 (polls a counter on purpose)
        await asyncio.sleep(0.001)


async def publish_all(bus: MetricsBus, events: list[RouteEvent], burst: int) -> float:
    """CPU seconds of this process to publish ``events``, ``burst`` per loop turn, until
    all are sent (and their echoes on the batch channel read)."""
    started = time.process_time()
    for i in range(0, len(events), burst):
        for event in events[i : i + burst]:
            bus.publish(event)
        await asyncio.sleep(0)
    await drained(bus)
    await asyncio.sleep(0.05)
    return time.process_time() - started


async def measure(n: int, bursts: list[int], rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        buses: dict[str, MetricsBus] = {
            "none": InMemoryMetricsBus("bench"),
            "redis": RedisMetricsBus(redis.url, replica_id="bench", buffer_size=10**6),
        }
        try:
            for bus in buses.values():
                await bus.start()
                await publish_all(bus, [route_event(i) for i in range(200)], 16)  # warm up
            out: dict[str, Any] = {}
            for burst in bursts:
                cpu = dict.fromkeys(buses, 0.0)
                publisher = buses["redis"].publisher  # type: ignore[attr-defined]
                # getattr: so that the same bench measures code from before these counters
                encode0 = getattr(publisher, "cpu_seconds", 0.0)
                batches0 = getattr(publisher, "batches", 0)
                for _ in range(rounds):
                    for name, bus in buses.items():
                        events = [route_event(i) for i in range(n // rounds)]
                        cpu[name] += await publish_all(bus, events, burst)
                per = (n // rounds) * rounds
                out[f"burst_{burst}"] = {
                    "events": per,
                    "none_us_per_event": round(cpu["none"] / per * 1e6, 1),
                    "redis_us_per_event": round(cpu["redis"] / per * 1e6, 1),
                    "redis_minus_none_us_per_event": round(
                        (cpu["redis"] - cpu["none"]) / per * 1e6, 1
                    ),
                    "encode_us_per_event": round(
                        (getattr(publisher, "cpu_seconds", 0.0) - encode0) / per * 1e6, 1
                    ),
                    "events_per_batch": round(
                        per / max(getattr(publisher, "batches", 0) - batches0, 1), 1
                    ),
                }
            return out
        finally:
            for bus in buses.values():
                await bus.aclose()
            redis.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()
    load = os.getloadavg()
    result = asyncio.run(measure(args.events, [1, 16, 64], args.rounds))
    result["loadavg_at_start_end"] = [load, os.getloadavg()]
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
