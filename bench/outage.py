"""A local model's outage, measured: what calls pay while it is down, and how soon they
come back to it.

    .venv/bin/python bench/outage.py                 # ~3 min; writes bench/results/outage.json
    .venv/bin/python bench/outage.py --quick         # one protocol, shorter
    .venv/bin/python bench/outage.py --server DIR    # the server package from DIR (e.g. an
                                                     # older checkout's server/), to compare

Everything in one process on 127.0.0.1: a real server (``App``, grpc.aio, port 0) with the
default breaker settings and a chain of two models. The first (the local model: Ollama,
OpenAI-compatible or Anthropic protocol, timeout 8 s as in the default chain) is a fake
that answers in 0.2 s, then fails for ``--outage`` seconds (HTTP 503, or holds every
request without ever answering it) and is healthy again. The second (the cloud model) is a
fake that answers in 0.5 s. Calls arrive open-loop, ``--rate`` per second, each in its own
task, from 3 s before the outage until ``--after`` seconds after it. Per row:

- ``during``: the calls sent during the outage: median and p99 seconds to a valid answer
  (every call got one, or ``errors`` says how many did not);
- ``back_after_s``: seconds from the recovery to the first answer by the local model (to a
  call sent after the recovery); ``local_after_2s``: the share of calls sent 2 s or more
  after the recovery that the local model answered;
- ``probes_during`` / ``probes_total``: background probes (model calls with a token limit
  of 1) the local fake saw during the outage / in all; ``local_calls_during``: callers'
  calls it saw during the outage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _paths(argv: list[str]) -> None:
    server = argv[argv.index("--server") + 1] if "--server" in argv else str(ROOT / "server")
    sys.path[:0] = [server, str(ROOT / "client"), str(ROOT)]
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-bench-0123456789")
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-0123456789")


_paths(sys.argv)

import grpc  # noqa: E402

from llm_router.v1 import router_pb2, router_pb2_grpc  # noqa: E402
from llm_router_server.app import App  # noqa: E402
from llm_router_server.config import Config, ServerConfig  # noqa: E402
from llm_router_server.types import ChainSpec, ModelSpec  # noqa: E402
from tests.recovery.traffic import is_probe  # noqa: E402
from tests.support.upstream import Answer, FakeUpstream, Hang, HttpError, Slow  # noqa: E402

LOCAL_TIMEOUT = 8.0
FAULTS = {"503": HttpError(503), "hang": Hang()}
REQUEST = router_pb2.RouteRequest(messages=[router_pb2.Message(role="user", content="What now?")])


def first_model(protocol: str, up: FakeUpstream) -> ModelSpec:
    name, base = {
        "ollama": ("ollama_chat/qwen2.5:7b", up.url),
        "openai": ("openai/qwen2.5-7b", f"{up.url}/v1"),
        "anthropic": ("anthropic/claude-haiku-4-5-20251001", up.url),
    }[protocol]
    return ModelSpec(name, timeout=LOCAL_TIMEOUT, api_base=base)


@dataclasses.dataclass(frozen=True)
class Call:
    sent: float
    seconds: float
    model: str
    """The model that answered; "" when the call failed."""


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def one_row(protocol: str, fault: str, args: argparse.Namespace) -> dict[str, Any]:
    local, cloud = FakeUpstream(), FakeUpstream()
    local.default = Slow(0.2, Answer("from the local model"))
    cloud.default = Slow(0.5, Answer("from the cloud"))
    first = first_model(protocol, local)
    second = ModelSpec("anthropic/claude-sonnet-4-6", timeout=30.0, api_base=cloud.url)
    config = Config(
        server=ServerConfig(listen="127.0.0.1:0"),
        chains={"default": ChainSpec("default", (first, second))},
    )
    app = App(config)
    port = await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = router_pb2_grpc.RouterStub(channel)
    for _ in range(5):  # warm up the connections
        await stub.Route(REQUEST, timeout=30)
    calls: list[Call] = []

    async def one() -> None:
        sent = time.monotonic()
        try:
            reply = await stub.Route(REQUEST, timeout=60)
            calls.append(Call(sent, time.monotonic() - sent, reply.model_used))
        except grpc.aio.AioRpcError:
            calls.append(Call(sent, time.monotonic() - sent, ""))

    tasks = []
    started = time.monotonic()
    outage_at = started + 3.0
    recovered = end = float("inf")
    while time.monotonic() < end:
        if recovered == float("inf") and time.monotonic() >= outage_at:
            recovered = local.outage(FAULTS[fault], args.outage)
            end = recovered + args.after
        tasks.append(asyncio.ensure_future(one()))
        await asyncio.sleep(1 / args.rate)
    await asyncio.gather(*tasks)
    await channel.close()
    await app.stop(0)
    local.close()
    cloud.close()

    down = recovered - args.outage
    during = [c for c in calls if down <= c.sent < recovered]
    after = [c for c in calls if c.sent >= recovered]
    back = next((c for c in after if c.model == first.model), None)
    late = [c for c in after if c.sent >= recovered + 2.0]
    seen = local.chat_requests()
    probes = [r for r in seen if is_probe(r)]
    answered = [c.seconds for c in during if c.model]
    return {
        "protocol": protocol,
        "fault": fault,
        "calls": len(calls),
        "during": {
            "calls": len(during),
            "errors": len(during) - len(answered),
            "p50_s": pct(answered, 0.5),
            "p99_s": pct(answered, 0.99),
            "max_s": pct(answered, 1.0),
            "answered_by_local": sum(c.model == first.model for c in during),
        },
        "back_after_s": None if back is None else round(back.sent + back.seconds - recovered, 3),
        "local_after_2s": round(sum(c.model == first.model for c in late) / len(late), 3)
        if late
        else None,
        "probes_during": sum(down <= r.at < recovered for r in probes),
        "probes_total": len(probes),
        "local_calls_during": sum(down <= r.at < recovered and not is_probe(r) for r in seen),
    }


def show(row: dict[str, Any]) -> None:
    d = row["during"]
    print(
        f"{row['protocol']:9} {row['fault']:4}  during: n={d['calls']:3d} err={d['errors']} "
        f"p50={d['p50_s']}s p99={d['p99_s']}s max={d['max_s']}s  "
        f"back after {row['back_after_s']}s  local after 2 s: {row['local_after_2s']}  "
        f"probes {row['probes_during']}/{row['probes_total']}  "
        f"local calls during {row['local_calls_during']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="import the server package from this folder")
    parser.add_argument("--quick", action="store_true", help="Ollama only, 5 s outage")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the model fails")
    parser.add_argument("--after", type=float, default=8.0, help="seconds run after recovery")
    parser.add_argument("--rate", type=float, default=5.0, help="calls per second")
    parser.add_argument("--protocols", default="ollama,openai,anthropic")
    parser.add_argument("--faults", default="503,hang")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "outage.json"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # every fallback is logged; the rows say it all
    if args.quick:
        args.protocols, args.outage = "ollama", 5.0
    load = os.getloadavg()
    rows = asyncio.run(all_rows(args))
    result = {
        "note": args.note,
        "server": "another checkout (--server)" if args.server else "this checkout",
        "settings": {
            "outage_s": args.outage,
            "after_s": args.after,
            "rate_per_s": args.rate,
            "local_timeout_s": LOCAL_TIMEOUT,
            "local_latency_s": 0.2,
            "cloud_latency_s": 0.5,
            "breaker": "defaults",
        },
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


async def all_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for protocol in args.protocols.split(","):
        for fault in args.faults.split(","):
            row = await one_row(protocol, fault, args)
            show(row)
            rows.append(row)
    return rows


if __name__ == "__main__":
    main()
