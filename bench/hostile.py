"""Hostile schemas and answers against a running router: status, and what a bystander sees.

``python -m bench.hostile [--server-root PATH] [--only NAME ...] [--out FILE]``

Starts a ``FakeUpstream`` (tests/fakes) in this process and the router as its own process
(``llm-router serve``, code from ``--server-root``, default this checkout) with two chains:
``main`` = [main, normal] and ``other`` = [other]. For each case the model ``main`` answers
the case's hostile text and ``normal`` a valid one. While the case's Route runs, two
bystanders call in a loop: a health Check and a Route on chain ``other``; the report gives
each case's gRPC status, its latency, and the slowest bystander reply seen during it.
Used for the before/after table of docs/validation.md.
"""

# ruff: noqa: ASYNC240

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.run import free_port, start_server, stop
from llm_router.v1 import router_pb2, router_pb2_grpc
from tests.support.upstream import Answer, Behaviour, FakeUpstream

REDOS = "^(a+)+$"
EVIL = "a" * 29 + "!"


def fan_out(levels: int) -> dict[str, Any]:
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "object"}
    return {"$ref": "#/$defs/d0", "$defs": defs}


def big_schema(chars: int, salt: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    i = 0
    while len(json.dumps(props)) < chars - 200:
        props[f"p{i}_{salt}"] = {"type": "string", "description": f"field {i} of {salt}"}
        i += 1
    return {"type": "object", "properties": props}


def remote_after_local(local: int) -> dict[str, Any]:
    refs = [{"$ref": "http://127.0.0.1:9/evil.json"}] + [{"$ref": "#/$defs/a"}] * local
    return {"$defs": {"a": {}}, "allOf": refs}


@dataclass(frozen=True)
class Case:
    name: str
    schema: Any  # a JSON value, or a str used as is; None: free text
    answer: str
    normal: str = '{"ok": true}'


def cases() -> list[Case]:
    digits = "9" * 5000
    return [
        Case("redos-pattern", {"type": "object", "properties": {"s": {"type": "string",
             "pattern": REDOS}}}, json.dumps({"s": EVIL}), '{"s": "aaa"}'),
        Case("redos-patternProperties", {"type": "object", "patternProperties": {REDOS: {}}},
             json.dumps({EVIL: 1})),
        Case("redos-propertyNames", {"type": "object", "propertyNames": {"pattern": REDOS}},
             json.dumps({EVIL: 1}), '{"a": 1}'),
        Case("ref-fan-out-20", fan_out(20), "{}"),
        Case("uniqueItems-5000", {"type": "array", "uniqueItems": True, "items":
             {"type": "object"}}, json.dumps([{"i": i} for i in range(5000)]), "[]"),
        Case("schema-100KB", big_schema(99_000, str(time.time_ns())), "{}"),
        Case("answer-5000-digit-int", {}, digits, "1"),
        Case("answer-deep-100000", {}, "[" * 100_000 + "]" * 100_000, "[]"),
        Case("answer-deep-150", {}, "[" * 150 + "]" * 150, "[]"),
        Case("answer-lone-surrogate-json", {}, '"\\ud800"', '"x"'),
        Case("answer-lone-surrogate-text", None, "bad \ud800 text", "fine text"),
        Case("schema-$schema-list", '{"$schema": []}', "{}"),
        Case("schema-$schema-5", '{"$schema": 5}', "{}"),
        Case("schema-minimum-5000-digits", f'{{"type":"integer","minimum":{digits}}}', "1"),
        Case("schema-remote-ref-after-1500", remote_after_local(1500), "{}"),
        Case("schema-remote-dynamicRef", {"$dynamicRef": "http://127.0.0.1:9/x.json"}, "{}"),
        Case("schema-true", "true", '{"any": 1}'),
        Case("schema-false", "false", "{}"),
    ]  # fmt: skip


def write_config(path: Path, port: int, upstream: str) -> None:
    model = '{{ model = "ollama_chat/{}", timeout = 60, api_base = "{}" }}'
    path.write_text(
        f"""
default_chain = "main"
[server]
listen = "127.0.0.1:{port}"
grace_seconds = 1
[breaker]
enabled = false
[chains.main]
models = [{model.format("main", upstream)}, {model.format("normal", upstream)}]
[chains.other]
models = [{model.format("other", upstream)}]
"""
    )


def chooser(by_case: dict[str, Case]) -> Any:
    def choose(path: str, body: Any) -> Behaviour | None:
        if not isinstance(body, dict) or "messages" not in body:
            return None
        text = json.dumps(body["messages"])
        case = next((c for name, c in by_case.items() if f"[case:{name}]" in text), None)
        if case is None:
            return Answer('{"ok": true}')
        return Answer(case.answer if body.get("model") == "main" else case.normal)

    return choose


@dataclass
class Result:
    case: str
    status: str
    model_used: str
    latency_ms: float
    health_max_ms: float
    other_route_max_ms: float
    detail: str


async def bystander(call: Any, done: asyncio.Event) -> float:
    worst = 0.0
    while not done.is_set():
        t0 = time.perf_counter()
        with contextlib.suppress(grpc.aio.AioRpcError):
            await call()
        worst = max(worst, time.perf_counter() - t0)
        await asyncio.sleep(0.02)
    return worst * 1000


async def quiet(health: health_pb2_grpc.HealthStub, within: float = 600) -> None:
    """Wait until the server answers a health check within 50 ms again (the previous case may
    still hold it), so that one case's freeze is not counted against the next."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        with contextlib.suppress(grpc.aio.AioRpcError):
            await health.Check(health_pb2.HealthCheckRequest(), timeout=within)
        if time.perf_counter() - t0 < 0.05:
            return
        await asyncio.sleep(0.1)


async def run_case(channel: grpc.aio.Channel, case: Case) -> Result:
    stub = router_pb2_grpc.RouterStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    await quiet(health)
    schema = "" if case.schema is None else case.schema
    if not isinstance(schema, str):
        schema = json.dumps(schema)
    request = router_pb2.RouteRequest(
        messages=[router_pb2.Message(role="user", content=f"[case:{case.name}] go")],
        schema=schema,
        chain="main",
    )
    other = router_pb2.RouteRequest(
        messages=[router_pb2.Message(role="user", content="hello")], chain="other"
    )
    done = asyncio.Event()
    checks = [
        asyncio.ensure_future(
            bystander(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=120), done)
        ),
        asyncio.ensure_future(bystander(lambda: stub.Route(other, timeout=120), done)),
    ]
    await asyncio.sleep(0.1)
    t0 = time.perf_counter()
    try:
        reply = await stub.Route(request, timeout=60)
        status, model, detail = "OK", reply.model_used, ""
    except grpc.aio.AioRpcError as exc:
        status, model, detail = exc.code().name, "", (exc.details() or "")[:160]
    latency = (time.perf_counter() - t0) * 1000
    done.set()
    health_ms, other_ms = await asyncio.gather(*checks)
    return Result(case.name, status, model, round(latency, 1), round(health_ms, 1),
                  round(other_ms, 1), detail)  # fmt: skip


async def main(args: argparse.Namespace) -> list[Result]:
    chosen = [c for c in cases() if not args.only or c.name in args.only]
    up = FakeUpstream()
    up.choose = chooser({c.name: c for c in chosen})
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "hostile.toml"
        write_config(config, port, up.url)
        if args.server_root:
            import bench.run

            bench.run.ROOT = Path(args.server_root).resolve()
        server = await start_server(config, port, Path(tmp) / "server.log")
        results = []
        try:
            async with grpc.aio.insecure_channel(server.target) as channel:
                for case in chosen:
                    result = await run_case(channel, case)
                    print(json.dumps(asdict(result)), file=sys.stderr)
                    results.append(result)
        finally:
            stop(server.proc)
            up.close()
    return results


def table(results: list[Result]) -> str:
    lines = ["| case | status | model | latency ms | health max ms | other chain max ms |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        lines.append(
            f"| {r.case} | {r.status} | {r.model_used or '-'} | {r.latency_ms} | "
            f"{r.health_max_ms} | {r.other_route_max_ms} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.hostile")
    parser.add_argument("--server-root", help="checkout whose server code to run")
    parser.add_argument("--only", nargs="*", help="case names to run")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    options = parser.parse_args()
    found = asyncio.run(main(options))
    print(table(found))
    if options.out:
        options.out.write_text(json.dumps([asdict(r) for r in found], indent=1))
