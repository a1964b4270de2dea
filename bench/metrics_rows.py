"""The bench's metrics rows (e) and its memory figures, for ``bench/run.py``.

(e) Route on servers whose metrics go to Redis up, down (nothing listens) and blackholed
(accepts, never answers), and on servers with 100 and 1,000 WatchMetrics streams open
(``bench/watchers_child.py``, each in its own process), with Redis and without, all in
the same rounds as the server without Redis and without watchers (``redis-none``), so
that their ratios to it are fair. Memory: the server's RSS after the load, and after
10,000 Route calls that each carry a JSON Schema of their own.
"""

# The harness starts its processes and polls from the event loop that also times them:
# blocking there costs nothing that is measured.
# ruff: noqa: ASYNC220

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import grpc

from llm_router.v1 import router_pb2, router_pb2_grpc

WATCHER_LEVELS = (100, 1000)
DASHBOARD_BATCH = "1000/500"
"""What the watchers ask for, as the project's own dashboards do: up to 1,000 events a
message, at most one message of events per 500 ms (``watchers_child.py``). The
``-unbatched`` rows ask for one event per message, as older clients do."""


class Row(Protocol):
    name: str
    concurrency: int
    p50_ms: float
    calls_per_s: float
    cpu_ms_per_call: float


class Harness(Protocol):
    """What ``bench/run.py`` lends these rows (its own functions)."""

    def free_port(self) -> int: ...
    def write_config(self, path: Path, port: int, upstream: str, dead: str, extra: str) -> None: ...
    async def start_server(self, config: Path, port: int, log: Path) -> Any: ...
    async def wait_port(self, port: int, within: float) -> None: ...
    def stop(self, proc: subprocess.Popen[Any]) -> None: ...
    def env(self) -> dict[str, str]: ...
    def route(
        self, stub: router_pb2_grpc.RouterStub, chain: str
    ) -> Callable[[], Awaitable[None]]: ...
    def rss_mb(self, pid: int) -> float: ...


class RedisStates:
    """Redis up (a real redis-server per server that uses one, so that a server's watchers
    see its own events only), down (a port where nothing listens) and blackholed (a
    listener that accepts and never answers)."""

    def __init__(self, h: Harness, workdir: Path) -> None:
        self.h, self.workdir = h, workdir
        self.down_port = h.free_port()
        self.redis: list[subprocess.Popen[bytes]] = []
        self.hole = socket.socket()
        self.hole.bind(("127.0.0.1", 0))
        self.hole.listen(1024)  # the kernel completes handshakes; nobody ever reads

    async def up(self) -> str:
        """The URL of a new redis-server of its own."""
        port = self.h.free_port()
        self.redis.append(
            subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
        await self.h.wait_port(port, 10)
        return f"redis://127.0.0.1:{port}/0"

    async def url(self, state: str) -> str:
        if state == "up":
            return await self.up()
        port = self.down_port if state == "down" else self.hole.getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    def close(self) -> None:
        for redis in self.redis:
            self.h.stop(redis)
        self.hole.close()


def servers_to_start() -> list[tuple[str, str, int]]:
    """``(row name, Redis state or "", watchers to open)`` per server besides the baseline."""
    rows = [(f"redis-{state}", state, 0) for state in ("up", "down", "blackholed")]
    for n in WATCHER_LEVELS:
        rows += [(f"watchers-{n}", "", n), (f"redis-up-watchers-{n}", "up", n)]
        rows += [(f"watchers-{n}-unbatched", "", n)]
    return rows


async def open_watchers(h: Harness, target: str, n: int, batch: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.watchers_child", target, str(n), batch],
        env=h.env(),
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    line = await asyncio.to_thread(child.stdout.readline)
    if line.strip() != b"open":
        raise RuntimeError(f"watchers did not open on {target}: {line!r}")
    return child


def close_watchers(child: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Stop a watchers process; what its streams got."""
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    got = json.loads(out.decode().strip().splitlines()[-1])
    events, missed, messages = sorted(got["events"]), got["missed"], got["messages"]
    return {
        "streams": len(events),
        "event_messages_total": sum(messages),
        "events_total": sum(events),
        "events_per_stream_min": events[0],
        "events_per_stream_median": events[len(events) // 2],
        "events_per_stream_max": events[-1],
        "missed_total": sum(missed),
    }


async def metrics_rows(
    h: Harness,
    tmp: Path,
    up: str,
    dead: str,
    baseline: Any,
    run_rounds: Callable[[list[Any], int], Awaitable[list[Any]]],
    counts: dict[int, int],
    n_rounds: int,
    servers: list[subprocess.Popen[bytes]],
    only: frozenset[str] = frozenset(),
) -> tuple[list[Any], dict[str, Any]]:
    """Rows (e) (those named in ``only``, when given) and what the watchers got
    (``{row name: ...}``)."""
    states = RedisStates(h, tmp)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        targets = [("redis-none", baseline.target, baseline.proc.pid)]
        for name, state, watchers in servers_to_start():
            if only and name not in only:
                continue
            extra = f'[metrics]\nredis_url = "{await states.url(state)}"\n' if state else ""
            port = h.free_port()
            h.write_config(tmp / f"{name}.toml", port, up, dead, extra)
            server = await h.start_server(tmp / f"{name}.toml", port, tmp / f"{name}.log")
            servers.append(server.proc)
            targets.append((name, server.target, server.proc.pid))
            if watchers:
                batch = "" if name.endswith("-unbatched") else DASHBOARD_BATCH
                children[name] = await open_watchers(h, server.target, watchers, batch)
        channels = [grpc.aio.insecure_channel(target) for _, target, _ in targets]
        try:
            plan = [
                (name, h.route(router_pb2_grpc.RouterStub(ch), "route"), pid, counts, 200)
                for (name, _, pid), ch in zip(targets, channels, strict=True)
            ]
            rows = await run_rounds(plan, n_rounds)
        finally:
            for ch in channels:
                await ch.close()
        watched = {name: close_watchers(child) for name, child in children.items()}
        children.clear()
        return rows, watched
    finally:
        for child in children.values():
            child.kill()
        states.close()


def metrics_summary(rows: list[Row]) -> dict[str, Any]:
    """Ratios of rows (e) to their baselines in the same rounds: each Redis state and each
    watcher level to ``redis-none``, and Redis up with watchers to ``redis-up``."""
    by = {(r.name, r.concurrency): r for r in rows}
    out: dict[str, Any] = {}
    pairs = [(f"redis-{s}", "redis-none") for s in ("up", "down", "blackholed")]
    for n in WATCHER_LEVELS:
        pairs += [(f"watchers-{n}", "redis-none"), (f"redis-up-watchers-{n}", "redis-up")]
        pairs += [(f"watchers-{n}-unbatched", "redis-none")]
    for conc in (1, 64):
        for name, base_name in pairs:
            row, base = by.get((name, conc)), by.get((base_name, conc))
            if row is None or base is None:
                continue
            key = f"{name}_over_{base_name}"
            out[f"ratio_{key}_p50_c{conc}"] = round(row.p50_ms / base.p50_ms, 3)
            out[f"ratio_{key}_calls_per_s_c{conc}"] = round(row.calls_per_s / base.calls_per_s, 3)
            out[f"ratio_{key}_cpu_c{conc}"] = round(row.cpu_ms_per_call / base.cpu_ms_per_call, 3)
        up, none = by.get(("redis-up", conc)), by.get(("redis-none", conc))
        if up and none:
            out[f"redis_up_cpu_ms_per_call_over_none_c{conc}"] = round(
                up.cpu_ms_per_call - none.cpu_ms_per_call, 3
            )
    return out


# -- memory ----------------------------------------------------------------------------------


def schema(i: int) -> str:
    """A JSON Schema of its own for call ``i`` (the bench upstream's ``{}`` satisfies it)."""
    return json.dumps(
        {
            "type": "object",
            "properties": {f"field_{i}": {"type": "string", "maxLength": 10 + i % 50}},
            "additionalProperties": True,
        }
    )


async def schema_memory(h: Harness, server: Any, n: int = 10_000, concurrency: int = 16) -> Any:
    """The server's RSS before and after ``n`` Route calls, each with a schema of its own."""
    before = h.rss_mb(server.proc.pid)
    errors = 0
    started = time.monotonic()
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        pending = iter(range(n))
        messages = [router_pb2.Message(role="user", content="Fill in the object.")]

        async def worker() -> None:
            nonlocal errors
            for i in pending:
                request = router_pb2.RouteRequest(
                    messages=messages, schema=schema(i), chain="route"
                )
                try:
                    await stub.Route(request, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "distinct_schemas": n,
        "rss_mb_before": round(before, 1),
        "rss_mb_after": round(h.rss_mb(server.proc.pid), 1),
        "errors": errors,
        "took_s": round(time.monotonic() - started, 1),
    }
