"""``llm-router health``: the standard gRPC health check, over the connection options every
command shares (``llm_router.connection``: ``--target``, ``--token``, ``--ca``, ...).

``--local`` checks the server that ``llm-router serve`` runs here with the same
configuration (``--config``, ``$LLM_ROUTER_CONFIG``, ``$LLM_ROUTER_LISTEN``): the address
is its ``server.listen`` (a wildcard host is read as loopback), and when it serves TLS the
check trusts the server's own certificate (``tls.cert_file``) under the name that
certificate carries. So the container's HEALTHCHECK is one command whatever the mode
(plaintext, TLS, tokens; mTLS needs ``--cert``/``--key`` or ``$LLM_ROUTER_CERT``/``_KEY``).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
from dataclasses import replace
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llm_router.connection import TLS, Connection, describe, from_arguments
from llm_router.errors import connection_hint

EXIT_FAILED = 1
EXIT_USAGE = 2
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


class LocalCheckError(Exception):
    """The local server's configuration cannot be checked as given."""


def local_connection(args: argparse.Namespace, given: Connection) -> Connection:
    """The connection to the server this machine's configuration describes."""
    from llm_router_server import config as config_module
    from llm_router_server.errors import ConfigError

    try:
        config = config_module.load(args.config)
    except ConfigError as exc:
        raise LocalCheckError(f"configuration error: {exc}") from exc
    host, _, port = config.server.listen.rpartition(":")
    host = _LOOPBACK.get(host, host).strip("[]")
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not config.tls.cert_file:
        return replace(given, target=target, tls=None)
    client = given.tls or TLS()
    if config.tls.client_ca_file and not client.cert:
        raise LocalCheckError(
            "the server requires client certificates (tls.client_ca_file): give --cert and "
            "--key (or $LLM_ROUTER_CERT and $LLM_ROUTER_KEY)"
        )
    ca = client.ca or config.tls.cert_file
    name = client.server_name or certificate_name(host, int(port), ca, client, args.timeout)
    return replace(given, target=target, tls=replace(client, ca=ca, server_name=name))


def certificate_name(host: str, port: int, ca: str, client: TLS, timeout: float) -> str:
    """A name the certificate served at ``host:port`` carries (its first DNS or IP
    subjectAltName, else its common name), read in a TLS handshake that trusts ``ca``."""
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # ca may be the server's own chain
    context.set_alpn_protocols(["h2"])
    if client.cert:
        context.load_cert_chain(client.cert, client.key or None)
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw) as conn,
    ):
        peer: Any = conn.getpeercert() or {}
    names = [v for k, v in peer.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
    names += [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
    if not names:
        raise LocalCheckError("the server certificate carries no name to check it by")
    # A wildcard name is checked as one name it covers.
    return str(names[0]).replace("*.", "health.", 1)


def health(args: argparse.Namespace) -> int:
    """Exit 0 when the server reports SERVING, else 1 (2: the options are unusable)."""
    try:
        connection = from_arguments(args)
        if args.local:
            connection = local_connection(args, connection)
        channel = connection.channel()
    except (LocalCheckError, ValueError, OSError) as exc:
        print(f"llm-router health: {exc}", file=sys.stderr)
        return EXIT_USAGE if not isinstance(exc, OSError) else EXIT_FAILED
    with channel:
        # types-grpcio-health-checking declares HealthStub without its methods.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service),
                timeout=args.timeout,
                metadata=connection.metadata,
            )
        except grpc.RpcError as exc:
            call: Any = exc
            hint = connection_hint(call.details() or "", connection)
            print(
                f"{describe(connection)}: {call.code().name}: {call.details()}"
                + (f" (hint: {hint})" if hint else ""),
                file=sys.stderr,
            )
            return EXIT_FAILED
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{connection.target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else EXIT_FAILED


def add_health_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from llm_router.connection import add_arguments

    parser = sub.add_parser(
        "health",
        help="check the server's gRPC health service",
        description="Exit 0 when the server reports SERVING, else 1.",
    )
    parser.add_argument("--service", default="", help="service name; empty means the whole server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    parser.add_argument(
        "--local",
        action="store_true",
        help="check the server `llm-router serve` runs here with the same configuration "
        "(address and TLS from --config / $LLM_ROUTER_CONFIG): the container HEALTHCHECK",
    )
    parser.add_argument(
        "--config", help="with --local: the server's TOML config (default: $LLM_ROUTER_CONFIG)"
    )
    add_arguments(parser)
    parser.set_defaults(func=health)
