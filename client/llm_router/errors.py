"""The errors a call raises, one class per way it can fail, read from the gRPC status.

    RouterError                    any failed call: .code (grpc.StatusCode), .message, .hint
    ├── InvalidRequestError        INVALID_ARGUMENT, RESOURCE_EXHAUSTED: no model was called
    ├── UnauthenticatedError       UNAUTHENTICATED: no bearer token, or a wrong one
    ├── ConnectionFailedError      UNAVAILABLE without attempts: no server reached (down,
    │                              wrong address, plaintext meeting TLS, certificate refused)
    └── ChainFailedError           the chain ran: .attempts, .chain, .latency_ms
        ├── AllModelsFailedError   UNAVAILABLE: every model was rejected
        ├── DeadlineExceededError  DEADLINE_EXCEEDED (.attempts empty when the client's own
        │                          deadline fired before the server's reply)
        └── RefusedError           PERMISSION_DENIED: a provider blocked the answer for
                                   safety and the chain's refusal_policy is "stop"

``hint`` is one sentence on what to change when the client can tell (TLS, token,
certificate), else "". ``str(error)`` is ``CODE: message``, plus the hint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import any_pb2, empty_pb2, unknown_fields

from llm_router.connection import Connection
from llm_router.results import attempt_from_proto, optional
from llm_router.v1 import router_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"

TLS_HOW = "TLS(ca=...) in Python, --ca / LLM_ROUTER_CA, or --tls / LLM_ROUTER_TLS=1 for a public CA"
TOKEN_HOW = (
    "token=... in Python, --token / LLM_ROUTER_TOKEN or --token-file / LLM_ROUTER_TOKEN_FILE"
)


class RouterError(Exception):
    """A call failed. ``code`` is the gRPC status code, ``hint`` what to change (or "")."""

    def __init__(self, code: grpc.StatusCode, message: str, hint: str = "") -> None:
        super().__init__(f"{code.name}: {message}" + (f" (hint: {hint})" if hint else ""))
        self.code = code
        self.message = message
        self.hint = hint


class InvalidRequestError(RouterError):
    """The server rejected the request before calling any model."""


class UnauthenticatedError(RouterError):
    """The server requires a bearer token (``auth.tokens``) and got none or a wrong one."""


class ConnectionFailedError(RouterError):
    """No server answered: it is down or elsewhere, or the connection's security does not
    match the server's (plaintext against TLS, an untrusted or misnamed certificate, a
    missing client certificate); ``hint`` says which when it can be told."""


class ChainFailedError(RouterError):
    """No model gave a valid answer. ``attempts`` lists what the server tried."""

    def __init__(
        self, code: grpc.StatusCode, message: str, failure: router_pb2.RouteFailure | None
    ) -> None:
        super().__init__(code, message)
        self.attempts = tuple(attempt_from_proto(a) for a in failure.attempts) if failure else ()
        self.chain = failure.chain if failure else ""
        self.latency_ms = failure.latency_ms if failure else 0.0
        self.cost_usd = optional(failure, "cost_usd") if failure else None
        """The attempts' costs summed, in USD; None when unknown."""


class AllModelsFailedError(ChainFailedError):
    """Every model of the chain was rejected (UNAVAILABLE with a RouteFailure detail)."""


class DeadlineExceededError(ChainFailedError):
    """The deadline ran out. ``attempts`` is empty when the client's own deadline fired first."""


class RefusedError(ChainFailedError):
    """A provider blocked the answer for safety and the chain's ``refusal_policy`` is
    ``"stop"`` (PERMISSION_DENIED); ``attempts`` ends with the ``safety_refusal`` one."""


def route_failure(metadata: Iterable[Any] | None) -> router_pb2.RouteFailure | None:
    """Read the RouteFailure detail from an error's trailing metadata, if it has one.

    The rich status (``google.rpc.Status``) is decoded field by field, so this
    needs no dependency beyond protobuf.
    """
    for key, value in metadata or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        fields = unknown_fields.UnknownFieldSet(empty_pb2.Empty.FromString(value))
        for i in range(len(fields)):
            field = fields[i]
            if field.field_number != 3:  # google.rpc.Status.details
                continue
            detail = any_pb2.Any.FromString(field.data)
            failure = router_pb2.RouteFailure()
            if detail.Unpack(failure):
                return failure
    return None


def translate(exc: grpc.RpcError, connection: Connection | None = None) -> RouterError:
    """Turn a gRPC error into the typed error for its status; ``connection`` (how the call
    was made) lets connection failures carry a hint."""
    call: Any = exc  # both grpc.Call (blocking) and grpc.aio.AioRpcError have these
    code: grpc.StatusCode = call.code()
    message: str = call.details() or ""
    failure = route_failure(call.trailing_metadata())
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return InvalidRequestError(code, message)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(code, message, failure)
    if code is grpc.StatusCode.PERMISSION_DENIED and failure is not None:
        return RefusedError(code, message, failure)
    if code is grpc.StatusCode.UNAVAILABLE and failure is not None:
        return AllModelsFailedError(code, message, failure)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        given = connection is not None and bool(connection.token)
        hint = (
            "the server did not accept this token"
            if given
            else f"the server requires a bearer token: give one ({TOKEN_HOW})"
        )
        return UnauthenticatedError(code, message, hint)
    if code is grpc.StatusCode.UNAVAILABLE:
        return ConnectionFailedError(code, message, connection_hint(message, connection))
    return RouterError(code, message)


def connection_hint(message: str, connection: Connection | None) -> str:
    """What the transport error text of an UNAVAILABLE call says to change, or ""."""
    tls = connection.tls if connection is not None else None
    text = message.lower()
    if "connection refused" in text:
        return "nothing listens at that address: is the server running, is the target right?"
    if "wrong_version_number" in text or ("handshake" in text and "record" in text):
        return "the server speaks plaintext: connect without TLS options"
    if "certificate_verify_failed" in text or "unable to get local issuer" in text:
        return (
            "the server certificate is not signed by a CA this client trusts: give the CA "
            "that signed it (TLS(ca=...), --ca / LLM_ROUTER_CA)"
        )
    if "hostname verification" in text:
        return (
            "the server certificate does not carry the target's host name: connect by a name "
            "it carries, or set the name to expect (TLS(server_name=...), --server-name / "
            "LLM_ROUTER_SERVER_NAME)"
        )
    if not ("socket closed" in text or "connection reset" in text):
        return ""
    if tls is None:
        return f"the server closed the connection at once: it probably serves TLS ({TLS_HOW})"
    if not tls.cert:
        return (
            "the server closed the connection in the TLS handshake: it probably requires a "
            "client certificate (mTLS): give one (TLS(cert=..., key=...), --cert/--key, "
            "LLM_ROUTER_CERT/LLM_ROUTER_KEY)"
        )
    return (
        "the server closed the connection in the TLS handshake: it probably does not accept "
        "this client certificate (not signed by its tls.client_ca_file)"
    )
