"""``CallCounter``: every Router call by method and final status code, rejected ones too.

Route events count only the calls that reached the chain. Calls turned away before
any model (``INVALID_ARGUMENT`` from the servicer, ``UNAUTHENTICATED`` from the token
check, ``RESOURCE_EXHAUSTED`` from gRPC's receive limit) make no event; this
interceptor, the server's outermost, sees them all and reports each finished call as
``(method, code name)`` to a callback (the Prometheus exporter's).

A request over ``server.max_receive_bytes`` is refused by gRPC's core before any
Python code sees it: the handler never runs. The interceptor notices it by the request
never being decoded: each call's record is told when its request is deserialized, and
a record dropped without that (when gRPC lets go of the call) counts as
``RESOURCE_EXHAUSTED``. A caller that goes away before its request arrives counts the
same way (rare for a unary call).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

Req = TypeVar("Req")
Resp = TypeVar("Resp")

CallSink = Callable[[str, str], None]
"""Called with ``(method, code name)`` once per finished call, e.g. ``("Route", "OK")``."""

SERVICE_PREFIX = "/llm_router.v1.Router/"


class _Record:
    """One call; counts it as never received when dropped before its request was decoded."""

    __slots__ = ("method", "received", "sink")

    def __init__(self, sink: CallSink, method: str) -> None:
        self.sink = sink
        self.method = method
        self.received = False

    def __del__(self) -> None:
        if not self.received:
            with contextlib.suppress(Exception):  # a finalizer must not raise
                self.sink(self.method, grpc.StatusCode.RESOURCE_EXHAUSTED.name)


def _code_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return grpc.StatusCode.OK.name


class CallCounter(grpc.aio.ServerInterceptor):
    """Reports each Router call's method and final code (see the module's docstring)."""

    def __init__(self, sink: CallSink) -> None:
        self.sink = sink

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        full = handler_call_details.method
        if handler is None or not full.startswith(SERVICE_PREFIX):
            return handler
        method = full[len(SERVICE_PREFIX) :]
        record = _Record(self.sink, method)
        sink = self.sink
        decode = handler.request_deserializer

        def deserialize(raw: bytes) -> Any:
            record.received = True
            return decode(raw) if decode is not None else raw

        changes: dict[str, Any] = {"request_deserializer": deserialize}
        unary = handler.unary_unary
        stream = handler.unary_stream
        if unary is not None:

            async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                code = ""
                try:
                    return await unary(request, context)  # type: ignore[arg-type,misc]  # aio context
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED.name
                    raise
                finally:
                    sink(method, code or _code_name(context))

            changes["unary_unary"] = counted
        elif stream is not None:

            async def counted_stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                code = ""
                try:
                    async for message in stream(request, context):  # type: ignore[arg-type,attr-defined]
                        yield message
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED.name
                    raise
                finally:
                    sink(method, code or _code_name(context))

            changes["unary_stream"] = counted_stream
        else:  # a client-streaming method: not in this service; count nothing
            record.received = True
            return handler
        # The handler is a namedtuple (grpc's _RPCMethodHandler); the hooks are swapped in.
        replaced: grpc.RpcMethodHandler[Req, Resp] = handler._replace(**changes)  # type: ignore[attr-defined]
        return replaced
