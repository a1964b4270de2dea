"""Requests that do not decode: INVALID_ARGUMENT and one log line, not UNKNOWN and a traceback.

grpc.aio decodes a request with its method's ``request_deserializer`` before any servicer
code runs, and answers a ``DecodeError`` there (bad UTF-8 in a string field, a corrupt
message) with UNKNOWN "Unexpected <class DecodeError>" and a traceback in the log.
Services are therefore added through ``TolerantServer``, a stand-in for the server that
gives each method with a single request message a tolerant deserializer: it returns an
``Undecodable`` instead of raising, and the method, wrapped, answers that with
INVALID_ARGUMENT (and one warning line) before the servicer sees it. Only registration
changes; a request that decodes costs one type check. Streaming requests (reflection) keep
grpc's own handling.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from llm_router_server.safe_text import shorten

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


@dataclass(frozen=True)
class Undecodable:
    """What the tolerant deserializer returns for bytes that are not the request message."""

    error: str


def tolerant(handler: Handler, method: str) -> Handler:
    """``handler`` with a deserializer that never raises and a behaviour that refuses
    what did not decode; other handlers (streaming requests, sync code) as they are."""
    decode = handler.request_deserializer
    if handler.request_streaming or decode is None:
        return handler

    def deserialize(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # protobuf's DecodeError, or anything a decoder raises
            return Undecodable(shorten(str(exc)))

    serialize = handler.response_serializer
    unary: Any = handler.unary_unary
    if unary is not None and inspect.iscoroutinefunction(unary):

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if type(request) is Undecodable:
                await _refuse(request, method, context)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, deserialize, serialize)
    stream: Any = handler.unary_stream
    if stream is not None and inspect.isasyncgenfunction(stream):

        async def generator(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if type(request) is Undecodable:
                await _refuse(request, method, context)
            async for reply in stream(request, context):
                yield reply

        return grpc.unary_stream_rpc_method_handler(generator, deserialize, serialize)
    if stream is not None and inspect.iscoroutinefunction(stream):  # writes with context.write

        async def writer(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            if type(request) is Undecodable:
                await _refuse(request, method, context)
            await stream(request, context)

        return grpc.unary_stream_rpc_method_handler(writer, deserialize, serialize)
    return handler


async def _refuse(
    request: Undecodable, method: str, context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    logger.warning("undecodable request to %s from %s: %s", method, context.peer(), request.error)
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the request message could not be decoded: {request.error}",
    )


class _TolerantGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are made ``tolerant`` (once per method)."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self.inner = inner
        self._made: dict[str, tuple[Handler, Handler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self.inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        made = self._made.get(method)
        if made is None or made[0] is not handler:
            made = (handler, tolerant(handler, method))
            self._made[method] = made
        return made[1]


class TolerantServer(grpc.aio.Server):
    """Stands in for ``server`` while services are added: it registers them ``tolerant``.
    Only for registration; the server itself is started and stopped as usual."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]
    ) -> None:
        self.server.add_generic_rpc_handlers([_TolerantGeneric(h) for h in generic_rpc_handlers])

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Handler]
    ) -> None:
        self.server.add_registered_method_handlers(
            service_name,
            {name: tolerant(h, f"/{service_name}/{name}") for name, h in method_handlers.items()},
        )

    def add_insecure_port(self, address: str) -> int:
        raise TypeError("TolerantServer only registers services")

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        raise TypeError("TolerantServer only registers services")

    async def start(self) -> None:
        raise TypeError("TolerantServer only registers services")

    async def stop(self, grace: float | None) -> None:
        raise TypeError("TolerantServer only registers services")

    async def wait_for_termination(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        raise TypeError("TolerantServer only registers services")
