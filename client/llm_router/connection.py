"""Where the server is and how to reach it: target(s), bearer token, TLS.

The same settings, with the same names, in every client and in the ``llm-router`` command:

==================  =========================  ========================================
flag                environment                meaning
==================  =========================  ========================================
``--target``        ``LLM_ROUTER_TARGET``      ``host:port``; several, comma-separated,
                                               or ``dns:///name:port``: calls are
                                               balanced round-robin over every address
``--token``         ``LLM_ROUTER_TOKEN``       bearer token (server ``auth.tokens``)
``--token-file``    ``LLM_ROUTER_TOKEN_FILE``  file holding the token (a mounted secret)
``--tls``           ``LLM_ROUTER_TLS=1``       TLS, trusting the system's CAs
``--ca``            ``LLM_ROUTER_CA``          TLS, trusting this PEM CA file
``--cert/--key``    ``LLM_ROUTER_CERT/_KEY``   client certificate and key (mTLS)
``--server-name``   ``LLM_ROUTER_SERVER_NAME`` name expected in the server certificate
==================  =========================  ========================================

A flag wins over the environment. Any of ``--ca``, ``--cert``, ``--key``,
``--server-name`` turns TLS on. The token is sent as ``authorization: Bearer <token>``
on every call, with or without TLS (the server accepts it either way; without TLS keep
to a private network such as a tailnet).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

DEFAULT_TARGET = "127.0.0.1:50051"

KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    # Ping an idle connection while calls are open, so a peer that vanished fails the call
    # instead of hanging it; the server accepts pings every 5 s or slower.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
)

_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class TLS:
    """TLS settings. All empty: TLS trusting the system's CAs."""

    ca: str = ""
    """PEM file of the CA(s) that signed the server certificate; empty: the system's."""
    cert: str = ""
    """PEM client certificate chain, for servers that require one (``tls.client_ca_file``)."""
    key: str = ""
    """PEM key of ``cert``."""
    server_name: str = ""
    """The name the server certificate must carry, when it is not the target's host."""

    def credentials(self) -> grpc.ChannelCredentials:
        if bool(self.cert) != bool(self.key):
            raise ValueError("a client certificate needs both cert and key (mTLS)")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "CA") if self.ca else None,
            private_key=_read(self.key, "client key") if self.key else None,
            certificate_chain=_read(self.cert, "client certificate") if self.cert else None,
        )


@dataclass(frozen=True)
class Connection:
    """How to reach the router: ``target``, an optional bearer ``token`` and ``tls``."""

    target: str = DEFAULT_TARGET
    token: str = field(default="", repr=False)
    tls: TLS | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Connection:
        """Read ``LLM_ROUTER_TARGET``, ``_TOKEN`` (or ``_TOKEN_FILE``), ``_TLS``, ``_CA``,
        ``_CERT``, ``_KEY`` and ``_SERVER_NAME``; unset ones keep their defaults."""
        env = os.environ if env is None else env
        return _build(
            target=env.get("LLM_ROUTER_TARGET", ""),
            token=env.get("LLM_ROUTER_TOKEN", ""),
            token_file=env.get("LLM_ROUTER_TOKEN_FILE", ""),
            use_tls=env.get("LLM_ROUTER_TLS", "").strip().lower() in _TRUE,
            tls=TLS(
                ca=env.get("LLM_ROUTER_CA", ""),
                cert=env.get("LLM_ROUTER_CERT", ""),
                key=env.get("LLM_ROUTER_KEY", ""),
                server_name=env.get("LLM_ROUTER_SERVER_NAME", ""),
            ),
            base=cls(),
        )

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: the bearer token, when there is one."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def grpc_target(self) -> tuple[str, list[tuple[str, Any]]]:
        """The target string gRPC dials and the channel options (balancing, keepalive, TLS
        name), shared by the blocking and the asyncio channel."""
        options: list[tuple[str, Any]] = [
            ("grpc.lb_policy_name", "round_robin"),
            *KEEPALIVE_OPTIONS,
        ]
        target = self.target.strip()
        if "," in target:
            target, authority = _address_list(target)
            options.append(("grpc.default_authority", authority))
        if self.tls is not None and self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return target, options

    def channel(self) -> grpc.Channel:
        """A blocking channel (``grpc.Channel``)."""
        target, options = self.grpc_target()
        if self.tls is None:
            return grpc.insecure_channel(target, options)
        return grpc.secure_channel(target, self.tls.credentials(), options)

    def aio_channel(self) -> grpc.aio.Channel:
        """An asyncio channel (``grpc.aio.Channel``)."""
        target, options = self.grpc_target()
        if self.tls is None:
            return grpc.aio.insecure_channel(target, options)
        return grpc.aio.secure_channel(target, self.tls.credentials(), options)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path!r}: {exc.strerror}") from exc


def _build(
    *, target: str, token: str, token_file: str, use_tls: bool, tls: TLS, base: Connection
) -> Connection:
    if token_file and not token:
        token = _read(token_file, "token").decode().strip()
    wants_tls = use_tls or any((tls.ca, tls.cert, tls.key, tls.server_name))
    return replace(
        base,
        target=target or base.target,
        token=token or base.token,
        tls=_merge(base.tls, tls) if wants_tls else base.tls,
    )


def _merge(base: TLS | None, given: TLS) -> TLS:
    base = base or TLS()
    return TLS(
        ca=given.ca or base.ca,
        cert=given.cert or base.cert,
        key=given.key or base.key,
        server_name=given.server_name or base.server_name,
    )


def _address_list(targets: str) -> tuple[str, str]:
    """``a:1,b:2`` as a gRPC ``ipv4:``/``ipv6:`` address list (host names are resolved once,
    here), and the authority to present: the first entry."""
    entries = [t.strip() for t in targets.split(",") if t.strip()]
    if any("://" in e or e.startswith(("dns:", "ipv4:", "ipv6:", "unix:")) for e in entries):
        raise ValueError(f"a target list holds host:port entries only: {targets!r}")
    v4: list[str] = []
    v6: list[str] = []
    for entry in entries:
        host, sep, port = entry.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"target {entry!r} is not host:port")
        host = host.strip("[]")
        for family, address in _resolve(host, int(port)):
            (v4 if family == socket.AF_INET else v6).append(address)
    if v4 and v6:
        raise ValueError(
            f"the targets {targets!r} mix IPv4 and IPv6 addresses: list one family only"
        )
    scheme = "ipv4" if v4 else "ipv6"
    return f"{scheme}:{','.join(v4 or v6)}", entries[0]


def _resolve(host: str, port: int) -> list[tuple[int, str]]:
    """The addresses of ``host`` (IPv4 ones when it has any), as ``(family, addr:port)``."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ValueError(f"cannot resolve target host {host!r}: {exc}") from exc
        found = {(int(info[0]), str(info[4][0])) for info in infos}
        v4 = sorted(a for f, a in found if f == socket.AF_INET)
        ips = [ipaddress.ip_address(a) for a in v4 or sorted(a for _, a in found)]
    else:
        ips = [ip]
    return [
        (socket.AF_INET, f"{a}:{port}") if a.version == 4 else (socket.AF_INET6, f"[{a}]:{port}")
        for a in dict.fromkeys(ips)
    ]


# -- the same options as command-line flags --------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--target``, ``--token``, ``--token-file``, ``--tls``, ``--ca``, ``--cert``,
    ``--key`` and ``--server-name``; read them back with ``from_arguments``."""
    group = parser.add_argument_group(
        "connection", "each flag defaults to its LLM_ROUTER_* environment variable"
    )
    group.add_argument(
        "--target",
        default="",
        help=f"host:port, a comma-separated list, or dns:///name:port ($LLM_ROUTER_TARGET, "
        f"else {DEFAULT_TARGET}); calls go round-robin over every address",
    )
    group.add_argument("--token", default="", help="bearer token ($LLM_ROUTER_TOKEN)")
    group.add_argument(
        "--token-file", default="", help="file holding the bearer token ($LLM_ROUTER_TOKEN_FILE)"
    )
    group.add_argument(
        "--tls",
        action="store_true",
        help="use TLS, trusting the system's CAs ($LLM_ROUTER_TLS=1)",
    )
    group.add_argument("--ca", default="", help="use TLS, trusting this PEM CA ($LLM_ROUTER_CA)")
    group.add_argument(
        "--cert", default="", help="client certificate, PEM, for mTLS ($LLM_ROUTER_CERT)"
    )
    group.add_argument("--key", default="", help="client key, PEM, for mTLS ($LLM_ROUTER_KEY)")
    group.add_argument(
        "--server-name",
        default="",
        help="name expected in the server certificate ($LLM_ROUTER_SERVER_NAME)",
    )


def from_arguments(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Connection:
    """The connection the flags of ``add_arguments`` describe, over ``Connection.from_env``."""
    return _build(
        target=args.target,
        token=args.token,
        token_file=args.token_file,
        use_tls=args.tls,
        tls=TLS(ca=args.ca, cert=args.cert, key=args.key, server_name=args.server_name),
        base=Connection.from_env(env),
    )


def describe(connection: Connection) -> str:
    """``target`` plus how it is reached, for messages (never the token itself)."""
    how = ["tls" if connection.tls is not None else "plaintext"]
    if connection.tls is not None and connection.tls.cert:
        how.append("client certificate")
    if connection.token:
        how.append("token")
    return f"{connection.target} ({', '.join(how)})"
