"""The ``llm-router`` command: ``serve`` runs the server, ``route`` sends one request,
``health`` checks it, ``watch`` shows its metrics live (``watch_view.py``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_CONFIG = 2
EXIT_FAILED = 1


def _serve(args: argparse.Namespace) -> int:
    # Must precede any litellm import: otherwise litellm fetches a cost map from the internet.
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    from llm_router_server import config as config_module
    from llm_router_server import event_loop
    from llm_router_server.app import serve
    from llm_router_server.errors import ConfigError

    try:
        config = config_module.load(args.config)
    except ConfigError as exc:
        print(f"llm-router: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.listen:
        from dataclasses import replace

        config = replace(config, server=replace(config.server, listen=args.listen))
    try:
        event_loop.run(serve(config), config.server.event_loop)
    except OSError as exc:
        print(f"llm-router: cannot serve: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _schema_arg(value: str) -> str:
    """A schema given inline as JSON, or as @path to a file."""
    if value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


def _route(args: argparse.Namespace) -> int:
    from llm_router.client import ChainFailedError, RouterClient, RouterError
    from llm_router_server.cli.money import usd

    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    with RouterClient(args.target) as client:
        try:
            result = client.route(
                messages,
                schema=args.schema or None,
                context=args.context,
                chain=args.chain,
                timeout=args.timeout,
            )
        except ChainFailedError as exc:
            print(
                f"error: {exc.code.name}: all attempts failed (cost {usd(exc.cost_usd)})",
                file=sys.stderr,
            )
            for a in exc.attempts:
                print(
                    f"  {a.model}{_repair(a.repair)}: {a.outcome} {a.reason_category}"
                    f" {a.latency_ms:.0f} ms {usd(a.cost_usd)}: {a.reason}",
                    file=sys.stderr,
                )
            return EXIT_FAILED
        except RouterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        print(
            json.dumps(
                {
                    "model_used": result.model_used,
                    "content": result.content,
                    "latency_ms": result.latency_ms,
                    "cost_usd": result.cost_usd,
                    "cost_avoided_usd": result.cost_avoided_usd,
                    "attempts": [
                        a.__dict__ | {"usage": a.usage and a.usage.__dict__}
                        for a in result.attempts
                    ],
                }
            )
        )
        return 0
    content = (
        result.content if isinstance(result.content, str) else json.dumps(result.content, indent=2)
    )
    print(content)
    print(
        f"\n-- answered by {result.model_used} (chain {result.chain!r})"
        f" in {result.latency_ms:.0f} ms; cost {usd(result.cost_usd)},"
        f" avoided {usd(result.cost_avoided_usd)}",
        file=sys.stderr,
    )
    for a in result.attempts:
        tail = f": {a.reason}" if a.reason else ""
        print(
            f"   {a.model}{_repair(a.repair)}: {a.outcome} {a.latency_ms:.0f} ms"
            f" {usd(a.cost_usd)}{tail}",
            file=sys.stderr,
        )
    return 0


def _repair(n: int) -> str:
    return f" (repair {n})" if n else ""


def _health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(args.target) as channel:
        # types-grpcio-health-checking declares HealthStub without its methods.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(f"{args.target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return EXIT_FAILED
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-router",
        description="LLM answers through a local-first fallback chain, served over gRPC.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the gRPC server", description="Run the gRPC server until SIGTERM/SIGINT."
    )
    serve.add_argument(
        "--config", help="TOML config file (default: $LLM_ROUTER_CONFIG, else built-in defaults)"
    )
    serve.add_argument("--listen", help="host:port, overrides server.listen and $LLM_ROUTER_LISTEN")
    serve.set_defaults(func=_serve)

    route = sub.add_parser(
        "route",
        help="send one Route request and print the answer",
        description="Send one Route request; print the answer, then the attempts on stderr.",
    )
    route.add_argument("prompt", help="the user message")
    route.add_argument(
        "--target",
        default=os.environ.get("LLM_ROUTER_TARGET", "127.0.0.1:50051"),
        help="host:port of the server (default: $LLM_ROUTER_TARGET or 127.0.0.1:50051)",
    )
    route.add_argument("--system", default="", help="a system message to send first")
    route.add_argument(
        "--schema",
        type=_schema_arg,
        default="",
        help="JSON Schema the answer must match: inline JSON or @file.json",
    )
    route.add_argument("--context", default="cli", help="caller label for logs and metrics")
    route.add_argument(
        "--chain", default="", help="chain name (default: the server's default chain)"
    )
    route.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    route.add_argument(
        "--json", action="store_true", help="print the whole result as one JSON line"
    )
    route.set_defaults(func=_route)

    health = sub.add_parser(
        "health",
        help="check the server's gRPC health service",
        description="Exit 0 when the server reports SERVING, else 1.",
    )
    health.add_argument(
        "--target",
        default=os.environ.get("LLM_ROUTER_TARGET", "127.0.0.1:50051"),
        help="host:port of the server (default: $LLM_ROUTER_TARGET or 127.0.0.1:50051)",
    )
    health.add_argument("--service", default="", help="service name; empty means the whole server")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds")
    health.set_defaults(func=_health)

    from llm_router_server.cli import watch_view

    watch_view.add_parser(sub, os.environ.get("LLM_ROUTER_TARGET", "127.0.0.1:50051"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
