"""``TracingInterceptor``: the Route span, continuing the caller's W3C trace context.

A gRPC server interceptor (the gRPC layer is where the caller's ``traceparent``
metadata is): for ``Router/Route`` it wraps the handler so that the call runs inside a
server span made current for the call's task, which the attempt spans (``spans.py``)
and log lines (``logs.py``) then find. Every other method (WatchMetrics, health,
reflection) passes untouched.

Attributes follow the RPC conventions (``rpc.system``, ``rpc.service``, ``rpc.method``,
``rpc.grpc.status_code``); the status is ERROR for the codes a server is to blame for
(UNAVAILABLE: every model failed, DEADLINE_EXCEEDED, INTERNAL, ...), with ``error.type``
the code's name; a caller's error (INVALID_ARGUMENT, UNAUTHENTICATED) leaves it unset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from llm_router_server.tracing.spans import PROPAGATOR

Req = TypeVar("Req")
Resp = TypeVar("Resp")

SERVICE = "llm_router.v1.Router"
ROUTE = f"/{SERVICE}/Route"
SPAN_NAME = f"{SERVICE}/Route"
_RPC_ATTRIBUTES = {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Route"}
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

Metadata = Sequence[tuple[str, str | bytes]]


class _MetadataGetter(Getter[Metadata]):
    """Reads W3C headers from gRPC invocation metadata (keys are lower case)."""

    def get(self, carrier: Metadata, key: str) -> list[str] | None:
        found = [v if isinstance(v, str) else v.decode("latin-1") for k, v in carrier if k == key]
        return found or None

    def keys(self, carrier: Metadata) -> list[str]:
        return [k for k, _ in carrier]


_GETTER = _MetadataGetter()


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """Runs each Route call inside a server span (see the module's docstring)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        if handler_call_details.method != ROUTE or handler is None:
            return handler
        behavior = handler.unary_unary
        if behavior is None:
            return handler
        metadata: Metadata = handler_call_details.invocation_metadata or ()
        tracer = self.tracer

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            parent = PROPAGATOR.extract(metadata, getter=_GETTER)
            with tracer.start_as_current_span(
                SPAN_NAME,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=_RPC_ATTRIBUTES,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                code = grpc.StatusCode.OK
                try:
                    return await behavior(request, context)  # type: ignore[arg-type,misc]  # aio context
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED
                    raise
                finally:
                    if code is grpc.StatusCode.OK:
                        code = _code(context.code())
                    _set_status(span, code)

        # The handler is a namedtuple (grpc's _RPCMethodHandler); only the behavior changes.
        replaced: grpc.RpcMethodHandler[Req, Resp] = handler._replace(  # type: ignore[attr-defined]
            unary_unary=traced
        )
        return replaced


def _code(value: object) -> grpc.StatusCode:
    if isinstance(value, grpc.StatusCode):
        return value
    if isinstance(value, int):
        return next((c for c in grpc.StatusCode if c.value[0] == value), grpc.StatusCode.UNKNOWN)
    return grpc.StatusCode.OK


def _set_status(span: trace.Span, code: grpc.StatusCode) -> None:
    if not span.is_recording():
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_FAULTS:
        span.set_attribute("error.type", code.name)
        span.set_status(Status(StatusCode.ERROR, code.name))
