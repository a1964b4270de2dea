"""What tracing costs a Route call, off and on: measured.

    .venv/bin/python bench/tracing_bench.py                # ~3 minutes; writes bench/results/
    .venv/bin/python bench/tracing_bench.py --quick        # fewer calls, for a smoke run

Rows, each run in a process of its own and alternated in rounds (so drifting machine
load hits them alike):

- ``baseline``: the server of ``--baseline-ref`` (default ``main``), unpacked from git
  into a temporary folder (``git archive``), before tracing existed;
- ``off``: this tree with tracing off (the default);
- ``on``: tracing on, every call sampled, spans handed to an exporter that drops them
  (the SDK's work without the network);
- ``on-unsampled``: tracing on with ``sample_ratio = 0`` (spans are created but not
  recorded; the ``traceparent`` still goes upstream).

Each row measures two things with a provider that answers at once in-process (no HTTP,
so the router's own cost is what moves): ``Router.route`` called directly (the chain
alone: CPU microseconds per call, the best of 20 blocks, which other load disturbs
least) and ``Route`` over a real gRPC channel to a real server (p50/p99 latency at
concurrency 1, CPU per call of the process at concurrency 16). Numbers from a shared
2-core machine are noisy: compare rows of one run; the summary gives medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("baseline", "off", "on", "on-unsampled")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_row(row: str, calls: int) -> dict[str, Any]:
    """One row, in this process (whose PYTHONPATH picks the tree)."""
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    import grpc

    from llm_router.v1 import router_pb2, router_pb2_grpc
    from llm_router_server.app import App
    from llm_router_server.config import Config, ServerConfig
    from llm_router_server.types import (
        ChainSpec,
        Completion,
        CompletionRequest,
        Message,
        ModelSpec,
        RouteRequest,
    )

    class Instant:
        async def start(self) -> None:
            return None

        async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
            return Completion(text="ok")

        async def aclose(self) -> None:
            return None

    chains = {"default": ChainSpec("default", (ModelSpec("ollama_chat/bench", timeout=5),))}
    config = Config(server=ServerConfig(listen="127.0.0.1:0"), chains=chains)
    tracing: Any = None
    if row.startswith("on"):
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        from llm_router_server.config import TracingConfig
        from llm_router_server.tracing.setup import Tracing

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        ratio = 0.0 if row == "on-unsampled" else 1.0
        tracing = Tracing(TracingConfig(enabled=True, sample_ratio=ratio), exporter=Drop())
    app = App(config, provider=Instant(), **({"tracing": tracing} if tracing else {}))
    port = await app.start()
    router = app.router
    request = RouteRequest(messages=(Message("user", "ping"),), context="bench")
    for _ in range(200):
        await router.route(request)
    blocks = []  # the best block is the least disturbed by whatever else the machine runs
    for _ in range(20):
        started = time.process_time()
        for _ in range(calls // 5):
            await router.route(request)
        blocks.append((time.process_time() - started) / (calls // 5) * 1e6)
    chain_us = min(blocks)

    proto = router_pb2.RouteRequest(
        messages=[router_pb2.Message(role="user", content="ping")], context="bench"
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        for _ in range(100):
            await stub.Route(proto)
        latencies = []
        for _ in range(calls):
            t = time.perf_counter()
            await stub.Route(proto)
            latencies.append((time.perf_counter() - t) * 1e6)
        gate = asyncio.Semaphore(16)

        async def one() -> None:
            async with gate:
                await stub.Route(proto)

        cpu = time.process_time()
        wall = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls * 2)))
        cpu_us = (time.process_time() - cpu) / (calls * 2) * 1e6
        rate = calls * 2 / (time.perf_counter() - wall)
    await app.stop(0)
    if tracing is not None:
        tracing.shutdown()
    return {
        "chain_cpu_us_per_call": round(chain_us, 1),
        "grpc_p50_us": round(pct(latencies, 0.5), 1),
        "grpc_p99_us": round(pct(latencies, 0.99), 1),
        "cpu_us_per_call_c16": round(cpu_us, 1),
        "calls_per_s_c16": round(rate, 1),
    }


def baseline_tree(ref: str, into: Path) -> Path:
    """``ref`` unpacked with git archive (the repository is only read)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "server", "client"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def spawn(row: str, calls: int, tree: Path) -> dict[str, Any]:
    env = dict(os.environ, LITELLM_OFFLINE_MODE="true")
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "server"), str(tree / "client")])
    out = subprocess.run(
        [sys.executable, __file__, "--row", row, "--calls", str(calls)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", choices=ROWS, help="run one row here and print it (internal)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "tracing_bench.json"))
    args = parser.parse_args()
    if args.row:
        print(json.dumps(asyncio.run(run_row(args.row, args.calls))))
        return
    calls, rounds = (300, 2) if args.quick else (args.calls, args.rounds)
    started = time.time()
    results: dict[str, list[dict[str, Any]]] = {row: [] for row in ROWS}
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_tree(args.baseline_ref, Path(tmp))
        for n in range(rounds):
            order = ROWS if n % 2 == 0 else tuple(reversed(ROWS))
            for row in order:
                results[row].append(spawn(row, calls, old if row == "baseline" else ROOT))
                print(f"round {n + 1}/{rounds} {row}: {results[row][-1]}", file=sys.stderr)
    summary = {
        row: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for row, runs in results.items()
    }
    base = summary["baseline"]
    ratios = {
        row: {key: round(value / base[key], 3) for key, value in values.items()}
        for row, values in summary.items()
    }
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": os.getloadavg(),
        },
        "calls": calls,
        "rounds": rounds,
        "baseline_ref": args.baseline_ref,
        "median": summary,
        "ratio_to_baseline": ratios,
        "runs": results,
        "took_s": round(time.time() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"median": summary, "ratio_to_baseline": ratios}, indent=2))


if __name__ == "__main__":
    main()
