"""Dashboards for the benchmarks: ``python -m bench.watchers_child TARGET N [BATCH]`` opens N
WatchMetrics streams to TARGET (100 per channel), reads them until SIGTERM, then prints one
JSON line: per stream, the events it got, the ``missed_events`` it was told of and the
messages that carried events. It prints ``open`` once every stream has had its first
snapshot. With ``BATCH`` (``"1000/500"``: ``max_events_per_message`` and
``batch_interval_ms``, as the project's own dashboards ask) the streams take events in
batches; without it, one event per message."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import grpc

from llm_router.v1 import router_pb2, router_pb2_grpc


async def watch(target: str, n: int, batch: str = "") -> dict[str, list[int]]:
    channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, (n + 99) // 100))]
    events, missed, messages = [0] * n, [0] * n, [0] * n
    most, _, pause = batch.partition("/")
    request = router_pb2.WatchMetricsRequest(
        max_events_per_message=int(most or 0), batch_interval_ms=int(pause or 0)
    )
    opened = asyncio.Semaphore(0)

    async def one(i: int) -> None:
        stub = router_pb2_grpc.RouterStub(channels[i % len(channels)])
        first = True
        async for message in stub.WatchMetrics(request):
            if first:
                first = False
                opened.release()
            kind = message.WhichOneof("kind")
            if kind == "event":
                events[i] += 1
            elif kind == "events":
                events[i] += len(message.events.events)
            messages[i] += kind in ("event", "events")
            missed[i] += message.missed_events

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    for _ in range(n):
        await opened.acquire()
    print("open", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return {"events": events, "missed": missed, "messages": messages}


def main() -> None:
    result = asyncio.run(watch(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4]))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
