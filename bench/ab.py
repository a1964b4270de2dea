"""The ``route`` row of two or more source trees in one run, alternated in rounds.

``python -m bench.ab --trees DIR DIR ...`` starts one fake upstream, the gRPC floor and one
``llm-router serve`` per tree (its own ``server/`` and ``client/`` on ``PYTHONPATH``, e.g. a
``git worktree`` of main beside a branch), then measures ``direct-http``, ``grpc-floor`` and
``route[NAME]`` per tree with ``run.py``'s own rounds, so machine load that drifts during the
run hits every tree alike. It prints each row and the overhead over direct HTTP at
concurrency 1 per tree.

``--load CONCURRENCY SECONDS`` instead keeps the first tree's server under a steady load
(after it prints ``LOAD`` on stderr) for a profiler to attach to its pid (printed too).
"""

# The harness starts its processes from the event loop that also times them, on purpose.
# ruff: noqa: ASYNC220, ASYNC240

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import run
from llm_router.v1 import router_pb2_grpc


def tree_env(root: Path) -> dict[str, str]:
    env = run.env()
    env["PYTHONPATH"] = os.pathsep.join([str(root / "server"), str(root / "client"), str(root)])
    return env


async def start(root: Path, config: Path, port: int, log: Path) -> run.Server:
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llm_router_server", "serve", "--config", str(config)],
            env=tree_env(root),
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    target = f"127.0.0.1:{port}"
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server of {root} exited: {log.read_text()[-2000:]}")
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.02)
    return run.Server(proc, target, time.monotonic() - started, log)


async def steady(call: Callable[[], Awaitable[None]], pid: int, conc: int, secs: float) -> None:
    for _ in range(200):
        await call()
    print(f"LOAD pid {pid}", file=sys.stderr, flush=True)
    stop, calls, cpu0 = time.monotonic() + secs, 0, run.cpu_seconds(pid)

    async def worker() -> None:
        nonlocal calls
        while time.monotonic() < stop:
            await call()
            calls += 1

    await asyncio.gather(*(worker() for _ in range(conc)))
    cpu = (run.cpu_seconds(pid) - cpu0) / max(calls, 1) * 1000
    print(f"load c{conc}: {calls} calls, {calls / secs:.0f}/s, server CPU {cpu:.3f} ms/call")


async def main(args: argparse.Namespace) -> None:
    trees = [Path(t).resolve() for t in args.trees]
    names = args.names or [t.name for t in trees]
    tmp = Path(tempfile.mkdtemp(prefix="llm-router-ab-"))
    up_port, floor_port = run.free_port(), run.free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.upstream", str(up_port)],
            env=run.env(),
            cwd=run.ROOT,
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "bench.floor", str(floor_port)], env=run.env(), cwd=run.ROOT
        ),
    ]
    try:
        await run.wait_port(up_port, 20)
        await run.wait_port(floor_port, 20)
        up = f"http://127.0.0.1:{up_port}"
        dead = f"http://127.0.0.1:{run.free_port()}"
        servers = []
        for i, root in enumerate(trees):
            port = run.free_port()
            run.write_config(tmp / f"{i}.toml", port, up, dead)
            server = await start(root, tmp / f"{i}.toml", port, tmp / f"{i}.log")
            procs.append(server.proc)
            servers.append(server)
        for server in servers:
            await run.wait_litellm(server)
        counts = {1: int(1000 * args.scale), 64: int(5000 * args.scale)}
        async with aiohttp.ClientSession() as session:
            channels = [grpc.aio.insecure_channel(s.target) for s in servers]
            floor = grpc.aio.insecure_channel(f"127.0.0.1:{floor_port}")
            routes = [run.route(router_pb2_grpc.RouterStub(ch), args.chain) for ch in channels]
            if args.load:
                await steady(routes[0], servers[0].proc.pid, int(args.load[0]), args.load[1])
                return
            plan = [
                ("direct-http", run.direct_http(session, up), None, counts, 200),
                ("grpc-floor", run.route(router_pb2_grpc.RouterStub(floor), "floor"),
                 procs[1].pid, counts, 200),
            ]  # fmt: skip
            plan += [
                (f"route[{name}]", call, server.proc.pid, counts, 200)
                for name, call, server in zip(names, routes, servers, strict=True)
            ]
            rows = await run.rounds(plan, args.rounds)
        for r in rows:
            print(
                f"{r.name:<22}{r.concurrency:>4} p50 {r.p50_ms:7.3f} p99 {r.p99_ms:7.3f} "
                f"{r.calls_per_s:7.0f}/s  CPU {r.cpu_ms_per_call:.3f} ms/call"
                + (f"  errors {r.errors}" if r.errors else "")
            )
        by = {(r.name, r.concurrency): r for r in rows}
        http, floor_row = by[("direct-http", 1)], by[("grpc-floor", 1)]
        for name in names:
            c1 = by[(f"route[{name}]", 1)]
            print(
                f"{name}: overhead over direct HTTP at c1 {c1.p50_ms - http.p50_ms:.3f} ms p50; "
                f"minus the gRPC floor {c1.p50_ms - http.p50_ms - floor_row.p50_ms:.3f} ms"
            )
    finally:
        for proc in procs:
            run.stop(proc)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    parser.add_argument("--trees", nargs="+", type=Path, required=True, help="source trees")
    parser.add_argument("--names", nargs="+", help="row names (default: the trees' folder names)")
    parser.add_argument("--scale", type=float, default=0.3, help="multiply the call counts")
    parser.add_argument("--rounds", type=int, default=3, help="alternate the rows this often")
    parser.add_argument("--chain", default="route", help="the chain every tree's row calls")
    parser.add_argument("--load", nargs=2, type=float, metavar=("CONCURRENCY", "SECONDS"))
    asyncio.run(main(parser.parse_args()))
