"""A thin typed client for the llm-router service (needs only grpcio and protobuf).

    from llm_router import RouterClient

    with RouterClient("127.0.0.1:50051") as router:
        result = router.route(
            [{"role": "user", "content": "Restart the nginx container?"}],
            schema={"type": "object", "required": ["action"]},
            context="supervisor.reconcile",
        )
    print(result.model_used, result.content)

``AsyncRouterClient`` is the same over ``grpc.aio``. Errors are typed: a bad
request raises ``InvalidRequestError``; when every model fails,
``AllModelsFailedError`` carries each attempt, read from the status detail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf import any_pb2, empty_pb2, json_format, unknown_fields

from llm_router.v1 import router_pb2, router_pb2_grpc

DEFAULT_TIMEOUT = 75.0
"""Seconds: enough for the default chain (8 s + 30 s + 30 s) plus margin."""

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_OUTCOMES = {
    v: k.removeprefix("ATTEMPT_OUTCOME_").lower() for k, v in router_pb2.AttemptOutcome.items()
}
_CATEGORIES = {
    v: k.removeprefix("REASON_CATEGORY_").lower() for k, v in router_pb2.ReasonCategory.items()
}
_CATEGORIES[router_pb2.REASON_CATEGORY_UNSPECIFIED] = ""

MessageLike = Mapping[str, str] | router_pb2.Message
SchemaLike = Mapping[str, Any] | str | None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Attempt:
    """One model's turn: ``outcome`` is success/rejected/invalid/skipped; ``reason_category``
    is timeout/provider_error/refusal/invalid_json/schema_mismatch/skipped/cancelled or ""."""

    model: str
    outcome: str
    reason_category: str
    reason: str
    latency_ms: float
    usage: Usage | None
    repair: int = 0
    """0 for the model's first answer; n for its n-th repair (asked again with its answer)."""
    cost_usd: float | None = None
    """USD; None when unknown (the model has no price, or no usage was reported)."""


@dataclass(frozen=True)
class RouteResult:
    content: Any
    """The parsed JSON answer when a schema was sent, else the answer text."""
    raw_text: str
    model_used: str
    attempts: tuple[Attempt, ...]
    latency_ms: float
    chain: str
    cost_usd: float | None = None
    """The attempts' costs summed, in USD; None when any is unknown."""
    cost_avoided_usd: float | None = None
    """What the chain's first priced model would have charged for the answer, when a model
    without a price answered (0 when a priced one did); None when unknown."""


class RouterError(Exception):
    """A Route call failed. ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidRequestError(RouterError):
    """The server rejected the request before calling any model."""


class ChainFailedError(RouterError):
    """No model gave a valid answer. ``attempts`` lists what the server tried."""

    def __init__(
        self, code: grpc.StatusCode, message: str, failure: router_pb2.RouteFailure | None
    ) -> None:
        super().__init__(code, message)
        self.attempts = tuple(_attempt(a) for a in failure.attempts) if failure else ()
        self.chain = failure.chain if failure else ""
        self.latency_ms = failure.latency_ms if failure else 0.0
        self.cost_usd = failure.cost_usd if failure and failure.HasField("cost_usd") else None


class AllModelsFailedError(ChainFailedError):
    """Every model of the chain was rejected (UNAVAILABLE with a RouteFailure detail)."""


class DeadlineExceededError(ChainFailedError):
    """The deadline ran out. ``attempts`` is empty when the client's own deadline fired first."""


def _attempt(a: router_pb2.Attempt) -> Attempt:
    usage = (
        Usage(a.usage.prompt_tokens, a.usage.completion_tokens, a.usage.total_tokens)
        if a.HasField("usage")
        else None
    )
    return Attempt(
        model=a.model,
        outcome=_OUTCOMES.get(a.outcome, str(a.outcome)),
        reason_category=_CATEGORIES.get(a.reason_category, str(a.reason_category)),
        reason=a.reason,
        latency_ms=a.latency_ms,
        usage=usage,
        repair=a.repair,
        cost_usd=a.cost_usd if a.HasField("cost_usd") else None,
    )


def _result(response: router_pb2.RouteResponse) -> RouteResult:
    return RouteResult(
        content=json_format.MessageToDict(response.content)
        if response.HasField("content")
        else None,
        raw_text=response.raw_text,
        model_used=response.model_used,
        attempts=tuple(_attempt(a) for a in response.attempts),
        latency_ms=response.latency_ms,
        chain=response.chain,
        cost_usd=response.cost_usd if response.HasField("cost_usd") else None,
        cost_avoided_usd=(
            response.cost_avoided_usd if response.HasField("cost_avoided_usd") else None
        ),
    )


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


def translate(exc: grpc.RpcError) -> RouterError:
    """Turn a gRPC error from Route into the typed error for its status."""
    code: grpc.StatusCode = exc.code()
    message: str = exc.details() or ""
    metadata = exc.trailing_metadata()
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequestError(code, message)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(code, message, route_failure(metadata))
    failure = route_failure(metadata)
    if code is grpc.StatusCode.UNAVAILABLE and failure is not None:
        return AllModelsFailedError(code, message, failure)
    return RouterError(code, message)


class RouterClient:
    """Blocking client. ``target`` is ``host:port``; the channel is insecure (private network)."""

    def __init__(
        self, target: str, *, timeout: float = DEFAULT_TIMEOUT, channel: grpc.Channel | None = None
    ) -> None:
        self._channel = channel if channel is not None else grpc.insecure_channel(target)
        self._stub = router_pb2_grpc.RouterStub(self._channel)
        self.timeout = timeout

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
            response = self._stub.Route(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return _result(response)

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
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._channel = channel if channel is not None else grpc.aio.insecure_channel(target)
        self._stub = router_pb2_grpc.RouterStub(self._channel)
        self.timeout = timeout

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
            response = await self._stub.Route(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return _result(response)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncRouterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
