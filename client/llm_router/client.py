"""A thin typed client for the llm-router service (needs only grpcio and protobuf).

    from llm_router import TLS, RouterClient

    with RouterClient("router.internal:50051", token=token, tls=TLS(ca="ca.pem")) as router:
        result = router.route(
            [{"role": "user", "content": "Restart the nginx container?"}],
            schema={"type": "object", "required": ["action"]},
            context="supervisor.reconcile",
        )
    print(result.model_used, result.content)

``RouterClient.from_env()`` reads the same settings from ``LLM_ROUTER_TARGET``,
``LLM_ROUTER_TOKEN``, ``LLM_ROUTER_CA``, ... (see ``llm_router.connection``). Without
``token`` and ``tls`` the channel is plaintext and unauthenticated, as a server without
``auth.tokens`` and ``[tls]`` expects. Several targets (``"a:50051,b:50051"``) or a DNS
name (``"dns:///router.internal:50051"``) spread the calls round-robin over every address.
``AsyncRouterClient`` is the same over ``grpc.aio``. Errors are typed (``llm_router.errors``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Generator, Iterable, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

from llm_router.connection import DEFAULT_TARGET, TLS, Connection
from llm_router.errors import (
    AllModelsFailedError,
    ChainFailedError,
    DeadlineExceededError,
    InvalidRequestError,
    RefusedError,
    RouterError,
    route_failure,
    translate,
)
from llm_router.results import Attempt, RouteResult, Usage, result_from_proto
from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router.watch import BATCH, WatchMessage, watch_async, watch_blocking, watch_request

DEFAULT_TIMEOUT = 75.0
"""Seconds: enough for the default chain (8 s + 30 s + 30 s) plus margin."""

MessageLike = Mapping[str, str] | router_pb2.Message
SchemaLike = Mapping[str, Any] | str | None

__all__ = [  # the names this module has always offered, kept for existing imports
    "AllModelsFailedError",
    "AsyncRouterClient",
    "Attempt",
    "ChainFailedError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "RefusedError",
    "RouteResult",
    "RouterClient",
    "RouterError",
    "Usage",
    "route_failure",
    "translate",
]


def _request(
    messages: Iterable[MessageLike], schema: SchemaLike, context: str, chain: str
) -> router_pb2.RouteRequest:
    protos = [
        m
        if isinstance(m, router_pb2.Message)
        else router_pb2.Message(role=m["role"], content=m["content"])
        for m in messages
    ]
    schema_text = schema if isinstance(schema, str) else json.dumps(schema) if schema else ""
    return router_pb2.RouteRequest(
        messages=protos, schema=schema_text, context=context, chain=chain
    )


def _connection(target: str | Connection, token: str, tls: TLS | None) -> Connection:
    if isinstance(target, Connection):
        if token or tls is not None:
            raise ValueError("give token and tls inside the Connection, not beside it")
        return target
    return Connection(target=target, token=token, tls=tls)


class RouterClient:
    """Blocking client. ``target`` is ``host:port``, several comma-separated, a
    ``dns:///name:port`` URI, or a whole ``Connection``."""

    def __init__(
        self,
        target: str | Connection = DEFAULT_TARGET,
        *,
        token: str = "",
        tls: TLS | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.connection = _connection(target, token, tls)
        self._channel = channel if channel is not None else self.connection.channel()
        self._stub = router_pb2_grpc.RouterStub(self._channel)
        self.timeout = timeout

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> RouterClient:
        """A client for ``Connection.from_env(env)`` (``LLM_ROUTER_TARGET``, ``_TOKEN``, ...)."""
        return cls(Connection.from_env(env), timeout=timeout)

    @property
    def stub(self) -> router_pb2_grpc.RouterStub:
        """The generated stub on the same channel (send ``connection.metadata`` with calls)."""
        return self._stub

    def route(
        self,
        messages: Iterable[MessageLike],
        schema: SchemaLike = None,
        *,
        context: str = "",
        chain: str = "",
        timeout: float | None = None,
    ) -> RouteResult:
        """Send one Route call; raise a ``RouterError`` subclass on failure."""
        request = _request(messages, schema, context, chain)
        try:
            response = self._stub.Route(
                request, timeout=timeout or self.timeout, metadata=self.connection.metadata
            )
        except grpc.RpcError as exc:
            raise translate(exc, self.connection) from exc
        return result_from_proto(response)

    def watch(
        self,
        *,
        interval: float = 0.0,
        chains: Sequence[str] = (),
        models: Sequence[str] = (),
        contexts: Sequence[str] = (),
        resume_after: str = "",
        reconnect: bool = True,
        batch: int = BATCH,
        batch_interval: float = 0.0,
    ) -> Generator[WatchMessage, None, None]:
        """WatchMetrics as typed messages (see ``llm_router.watch``); runs until the caller
        stops iterating (``close()`` ends the call at once). Events come from the server
        up to ``batch`` a message, at most one such message per ``batch_interval``
        seconds, and are yielded one by one (``batch=0``: one per message)."""
        request = watch_request(
            interval=interval,
            chains=chains,
            models=models,
            contexts=contexts,
            resume_after=resume_after,
            batch=batch,
            batch_interval=batch_interval,
        )
        return watch_blocking(self._stub, self.connection, request, reconnect)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RouterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRouterClient:
    """asyncio client over ``grpc.aio``; same calls as ``RouterClient``, awaited."""

    def __init__(
        self,
        target: str | Connection = DEFAULT_TARGET,
        *,
        token: str = "",
        tls: TLS | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.connection = _connection(target, token, tls)
        self._channel = channel if channel is not None else self.connection.aio_channel()
        self._stub = router_pb2_grpc.RouterStub(self._channel)
        self.timeout = timeout

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> AsyncRouterClient:
        """A client for ``Connection.from_env(env)`` (``LLM_ROUTER_TARGET``, ``_TOKEN``, ...)."""
        return cls(Connection.from_env(env), timeout=timeout)

    @property
    def stub(self) -> router_pb2_grpc.RouterStub:
        """The generated stub on the same channel (send ``connection.metadata`` with calls)."""
        return self._stub

    async def route(
        self,
        messages: Iterable[MessageLike],
        schema: SchemaLike = None,
        *,
        context: str = "",
        chain: str = "",
        timeout: float | None = None,  # noqa: ASYNC109 (the gRPC deadline, sent to the server)
    ) -> RouteResult:
        """Send one Route call; raise a ``RouterError`` subclass on failure."""
        request = _request(messages, schema, context, chain)
        try:
            response = await self._stub.Route(
                request, timeout=timeout or self.timeout, metadata=self.connection.metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, self.connection) from exc
        return result_from_proto(response)

    def watch(
        self,
        *,
        interval: float = 0.0,
        chains: Sequence[str] = (),
        models: Sequence[str] = (),
        contexts: Sequence[str] = (),
        resume_after: str = "",
        reconnect: bool = True,
        batch: int = BATCH,
        batch_interval: float = 0.0,
    ) -> AsyncGenerator[WatchMessage, None]:
        """WatchMetrics as typed messages (see ``llm_router.watch``): ``async for``;
        ``await aclose()`` ends the call at once. ``batch`` and ``batch_interval`` as for
        ``RouterClient.watch``."""
        request = watch_request(
            interval=interval,
            chains=chains,
            models=models,
            contexts=contexts,
            resume_after=resume_after,
            batch=batch,
            batch_interval=batch_interval,
        )
        return watch_async(self._stub, self.connection, request, reconnect)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncRouterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
