"""Between the wire and the chain: protobuf conversion, and the one table of gRPC statuses.

Router errors become gRPC statuses here and only here, through ``STATUS_TABLE``
(most specific first, ``status_code_for``). Failures of the whole chain carry a
``RouteFailure`` detail in the rich status (``failure_status``, sent as
``grpc-status-details-bin``), so clients can read every attempt without parsing text.
A status message is cut to ``MAX_STATUS_CHARS`` (``status_message``) and each attempt's
reason is bounded where it is recorded, so the trailing metadata stays far below the 8 KiB
a default client accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

import grpc
from google.protobuf import any_pb2, json_format, struct_pb2, timestamp_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from llm_router.v1 import router_pb2
from llm_router_server.breaker.rules import Circuit, State, Transition
from llm_router_server.errors import (
    AllModelsFailedError,
    ChainFailedError,
    DeadlineExceededError,
    InvalidRequestError,
    LLMRouterError,
    RefusedError,
)
from llm_router_server.metrics.counters import ChainStats, ModelStats, event_usage
from llm_router_server.pricing.price import call_cost
from llm_router_server.safe_text import shorten
from llm_router_server.types import (
    Attempt,
    Category,
    Message,
    Outcome,
    RouteEvent,
    RouteRequest,
    RouteResult,
    RouteStatus,
    Usage,
)

STATUS_TABLE: tuple[tuple[type[LLMRouterError], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (AllModelsFailedError, grpc.StatusCode.UNAVAILABLE),
    (RefusedError, grpc.StatusCode.PERMISSION_DENIED),
)

MAX_STATUS_CHARS = 1000
"""The longest status message; the attempts are in the RouteFailure detail in full."""

_OUTCOMES = {
    Outcome.SUCCESS: router_pb2.ATTEMPT_OUTCOME_SUCCESS,
    Outcome.REJECTED: router_pb2.ATTEMPT_OUTCOME_REJECTED,
    Outcome.INVALID: router_pb2.ATTEMPT_OUTCOME_INVALID,
    Outcome.SKIPPED: router_pb2.ATTEMPT_OUTCOME_SKIPPED,
}
_CATEGORIES = {
    Category.NONE: router_pb2.REASON_CATEGORY_UNSPECIFIED,
    Category.TIMEOUT: router_pb2.REASON_CATEGORY_TIMEOUT,
    Category.PROVIDER_ERROR: router_pb2.REASON_CATEGORY_PROVIDER_ERROR,
    Category.REFUSAL: router_pb2.REASON_CATEGORY_REFUSAL,
    Category.INVALID_JSON: router_pb2.REASON_CATEGORY_INVALID_JSON,
    Category.SCHEMA_MISMATCH: router_pb2.REASON_CATEGORY_SCHEMA_MISMATCH,
    Category.SKIPPED: router_pb2.REASON_CATEGORY_SKIPPED,
    Category.CANCELLED: router_pb2.REASON_CATEGORY_CANCELLED,
    Category.CIRCUIT_OPEN: router_pb2.REASON_CATEGORY_CIRCUIT_OPEN,
    Category.SAFETY_REFUSAL: router_pb2.REASON_CATEGORY_SAFETY_REFUSAL,
    Category.SATURATED: router_pb2.REASON_CATEGORY_SATURATED,
    Category.CONTEXT_WINDOW: router_pb2.REASON_CATEGORY_CONTEXT_WINDOW,
    Category.AUTHENTICATION: router_pb2.REASON_CATEGORY_AUTHENTICATION,
    Category.RATE_LIMITED: router_pb2.REASON_CATEGORY_RATE_LIMITED,
    Category.VALIDATION_TIMEOUT: router_pb2.REASON_CATEGORY_VALIDATION_TIMEOUT,
}
_ROUTE_STATUSES = {
    RouteStatus.OK: router_pb2.ROUTE_STATUS_OK,
    RouteStatus.ALL_FAILED: router_pb2.ROUTE_STATUS_ALL_FAILED,
    RouteStatus.DEADLINE_EXCEEDED: router_pb2.ROUTE_STATUS_DEADLINE_EXCEEDED,
    RouteStatus.CANCELLED: router_pb2.ROUTE_STATUS_CANCELLED,
    RouteStatus.REFUSED: router_pb2.ROUTE_STATUS_REFUSED,
}


def status_code_for(exc: LLMRouterError) -> grpc.StatusCode:
    """The gRPC status for a router error: the first table row it is an instance of."""
    for kind, code in STATUS_TABLE:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def status_message(exc: LLMRouterError) -> str:
    """The status message of a router error, bounded (it travels in trailing metadata)."""
    return shorten(str(exc), MAX_STATUS_CHARS)


def attempt_to_proto(attempt: Attempt) -> router_pb2.Attempt:
    message = router_pb2.Attempt(
        model=attempt.model,
        outcome=_OUTCOMES[attempt.outcome],
        reason_category=_CATEGORIES[attempt.category],
        reason=attempt.reason,
        latency_ms=attempt.latency_ms,
        repair=attempt.repair,
        cost_usd=attempt.cost_usd,  # None leaves the optional field absent: unknown
    )
    if attempt.usage is not None:
        message.usage.CopyFrom(_usage_to_proto(attempt.usage))
    return message


def result_to_proto(result: RouteResult) -> router_pb2.RouteResponse:
    content = struct_pb2.Value()
    if isinstance(result.content, str):
        content.string_value = result.content  # free text: skip ParseDict's generic walk
    else:
        json_format.ParseDict(result.content, content)
    return router_pb2.RouteResponse(
        content=content,
        raw_text=result.raw_text,
        model_used=result.model_used,
        attempts=[attempt_to_proto(a) for a in result.attempts],
        latency_ms=result.latency_ms,
        chain=result.chain,
        cost_usd=result.cost_usd,
        cost_avoided_usd=result.cost_avoided_usd,
    )


def event_to_proto(event: RouteEvent) -> router_pb2.RouteEvent:
    message = router_pb2.RouteEvent(
        time=_timestamp(event.timestamp),
        status=_ROUTE_STATUSES[event.status],
        chain=event.chain,
        context=event.context,
        model_used=event.model_used,
        latency_ms=event.latency_ms,
        attempts=[attempt_to_proto(a) for a in event.attempts],
        event_id=event.event_id,
        replica_id=event.replica_id,
        cost_usd=call_cost(event.attempts),
        cost_avoided_usd=event.cost_avoided_usd,
        local_answer=event.local_answer,
    )
    usage = event_usage(event)
    if usage is not None:
        message.usage.CopyFrom(_usage_to_proto(usage))
    return message


def stats_to_proto(
    stats: Mapping[str, ModelStats],
    now: float,
    *,
    cluster_wide: bool,
    replica_id: str,
    chains: Mapping[str, ChainStats] | None = None,
) -> router_pb2.MetricsSnapshot:
    """A snapshot with latency, tokens and money per model, and money per chain."""
    return router_pb2.MetricsSnapshot(
        time=_timestamp(now),
        models=[router_pb2.ModelCounters(model=model, **asdict(s)) for model, s in stats.items()],
        cluster_wide=cluster_wide,
        replica_id=replica_id,
        chains=[
            router_pb2.ChainCounters(chain=chain, **asdict(s))
            for chain, s in (chains or {}).items()
        ],
    )


_CIRCUIT_STATES = {
    State.CLOSED: router_pb2.CIRCUIT_STATE_CLOSED,
    State.OPEN: router_pb2.CIRCUIT_STATE_OPEN,
    State.HALF_OPEN: router_pb2.CIRCUIT_STATE_HALF_OPEN,
}


def circuit_change_to_proto(change: Transition, replica_id: str) -> router_pb2.CircuitChange:
    return router_pb2.CircuitChange(
        time=_timestamp(change.time),
        model=change.model,
        api_base=change.api_base,
        from_state=_CIRCUIT_STATES[change.old],
        to_state=_CIRCUIT_STATES[change.new],
        reason=change.reason,
        cool_down_seconds=change.cool_down,
        replica_id=replica_id,
    )


def add_circuits(snapshot: router_pb2.MetricsSnapshot, circuits: Mapping[str, Circuit]) -> None:
    """Fill each model's circuit state into a snapshot (models without counters included)."""
    by_model = {m.model: m for m in snapshot.models}
    for model in sorted(circuits):
        entry = by_model.get(model)
        if entry is None:
            entry = snapshot.models.add(model=model)
        circuit = circuits[model]
        entry.circuit = _CIRCUIT_STATES[circuit.state]
        entry.circuit_reason = "" if circuit.state is State.CLOSED else circuit.reason


def request_from_proto(request: router_pb2.RouteRequest) -> RouteRequest:
    return RouteRequest(
        messages=tuple(Message(role=m.role, content=m.content) for m in request.messages),
        schema=request.schema,
        context=request.context,
        chain=request.chain,
    )


def failure_status(exc: ChainFailedError) -> grpc.Status:
    """The rich status for a failed chain: its code from the table, the message and a typed
    RouteFailure detail."""
    code = status_code_for(exc)
    detail = any_pb2.Any()
    detail.Pack(
        router_pb2.RouteFailure(
            attempts=[attempt_to_proto(a) for a in exc.attempts],
            latency_ms=exc.latency_ms,
            chain=exc.chain,
            cost_usd=call_cost(exc.attempts),
        )
    )
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=status_message(exc), details=[detail]
    )
    return rpc_status.to_status(status)


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    when = timestamp_pb2.Timestamp()
    when.FromNanoseconds(int(seconds * 1e9))
    return when


def _usage_to_proto(usage: Usage) -> router_pb2.Usage:
    return router_pb2.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )
