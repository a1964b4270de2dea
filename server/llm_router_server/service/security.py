"""Security of the gRPC port: bearer-token authentication and TLS/mTLS credentials.

``BearerTokenInterceptor`` checks ``authorization: Bearer <token>`` on every call
except the health and reflection services, comparing against each configured
token in constant time (``hmac.compare_digest``), and answers UNAUTHENTICATED
otherwise. Tokens never appear in logs or status messages.

``server_credentials`` builds TLS credentials from PEM files, after checking that they load
(``check_tls_files``); with a client CA the server requires and verifies client
certificates (mTLS).
"""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc

from llm_router_server.config import TLSConfig
from llm_router_server.errors import ConfigError

logger = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
"""Method prefixes that need no token: health checks, and reflection (it reveals only the
public contract)."""


def _deny(message: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Lets a call through only with ``authorization: Bearer <one of the tokens>``."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = tuple(t.encode() for t in tokens)
        self.rejected = 0

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        method = handler_call_details.method
        if method.startswith(OPEN_SERVICES):
            return await continuation(handler_call_details)
        given = _bearer(handler_call_details.invocation_metadata)
        if given is None:
            self.rejected += 1
            return _deny("missing bearer token: send 'authorization: Bearer <token>' metadata")
        # Compare with every token, always, so the time taken says nothing about which matched.
        ok = False
        for token in self._tokens:
            ok |= hmac.compare_digest(given, token)
        if not ok:
            self.rejected += 1
            logger.warning("rejected a call to %s: wrong bearer token", method)
            return _deny("invalid bearer token")
        return await continuation(handler_call_details)


def _bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> bytes | None:
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip().encode()
    return None


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """TLS credentials from the configured PEM files (mTLS with a client CA).

    Raises ``ConfigError`` naming the key when a file does not load (gRPC itself would
    only fail to bind, "Failed to bind to address")."""
    check_tls_files(tls)
    chain = Path(tls.cert_file).read_bytes()
    key = Path(tls.key_file).read_bytes()
    client_ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _no_password() -> bytes:
    return b""  # an encrypted key fails to load instead of prompting on the terminal


def check_tls_files(tls: TLSConfig) -> None:
    """The TLS files load: a PEM certificate chain with its matching, unencrypted PEM
    private key, and PEM CA certificates; else ``ConfigError`` naming the key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            "tls.cert_file/tls.key_file: not a PEM certificate chain with its matching "
            f"unencrypted PEM private key: {exc}"
        ) from exc
    if tls.client_ca_file:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"tls.client_ca_file: not PEM CA certificates: {exc}") from exc
