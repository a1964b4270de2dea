"""The ``llm-router`` command: ``serve`` runs the server, ``route`` sends one request,
``health`` checks it (``connect.py``), ``watch`` shows its metrics live (``watch_view.py``).
The last three take the Python client's connection options (``llm_router.connection``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_CONFIG = 2
EXIT_FAILED = 1


def _serve(args: argparse.Namespace) -> int:
    # Must precede any litellm import: otherwise litellm fetches a cost map from the internet.
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    from llm_router_server import config as config_module
    from llm_router_server.errors import ConfigError

    try:
        config = config_module.load(args.config)
        if args.listen:
            config_module.check_listen(args.listen, "--listen")
    except ConfigError as exc:
        print(f"llm-router: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.listen:
        from dataclasses import replace

        config = replace(config, server=replace(config.server, listen=args.listen))
    # Imported once the configuration is known good: a bad one is reported at once.
    from llm_router_server import event_loop, logs
    from llm_router_server.app import serve

    logs.configure(config.server.log_format, verbose=args.verbose)
    try:
        event_loop.run(serve(config), config.server.event_loop)
    except ConfigError as exc:  # found at start-up: a TLS file that does not load
        print(f"llm-router: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
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
    from llm_router import ChainFailedError, RefusedError, RouterClient, RouterError
    from llm_router.connection import from_arguments
    from llm_router_server.cli.money import usd

    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    # -- connection options (llm_router.connection): --target, --token, --ca, ... --
    try:
        client = RouterClient(from_arguments(args))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # --
    with client:
        try:
            result = client.route(
                messages,
                schema=args.schema or None,
                context=args.context,
                chain=args.chain,
                timeout=args.timeout,
            )
        except ChainFailedError as exc:
            what = "a provider refused" if isinstance(exc, RefusedError) else "all attempts failed"
            print(f"error: {exc.code.name}: {what} (cost {usd(exc.cost_usd)})", file=sys.stderr)
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

    # -- route, health and watch share the Python client's connection options --
    from llm_router.connection import add_arguments
    from llm_router_server.cli import connect, watch_view

    add_arguments(route)
    connect.add_health_parser(sub)
    watch_view.add_parser(sub)
    # --
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from llm_router_server import logs

    args = build_parser().parse_args(argv)
    logs.configure("text", verbose=args.verbose)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
