"""The gRPC face of the router: decode requests, call the chain, encode replies.

Router errors become gRPC statuses here and only here, through ``STATUS_TABLE``
(most specific first). Failures of the whole chain carry a ``RouteFailure``
detail in the rich status (``grpc-status-details-bin``), so clients can read
every attempt without parsing text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format, struct_pb2, timestamp_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server.breaker.breaker import Circuit, State, Transition
from llm_router_server.errors import (
    AllModelsFailedError,
    ChainFailedError,
    DeadlineExceededError,
    InvalidRequestError,
    LLMRouterError,
    RefusedError,
)
from llm_router_server.metrics.bus import (
    ModelStats,
    Subscription,
    event_filter,
    event_usage,
    parse_event_id,
)
from llm_router_server.routing.chain import Router
from llm_router_server.types import (
    Attempt,
    Category,
    Deadline,
    Message,
    Outcome,
    RouteEvent,
    RouteRequest,
    RouteResult,
    RouteStatus,
)

logger = logging.getLogger(__name__)

STATUS_TABLE: tuple[tuple[type[LLMRouterError], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (AllModelsFailedError, grpc.StatusCode.UNAVAILABLE),
    (RefusedError, grpc.StatusCode.PERMISSION_DENIED),
)

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


def attempt_to_proto(attempt: Attempt) -> router_pb2.Attempt:
    message = router_pb2.Attempt(
        model=attempt.model,
        outcome=_OUTCOMES[attempt.outcome],
        reason_category=_CATEGORIES[attempt.category],
        reason=attempt.reason,
        latency_ms=attempt.latency_ms,
    )
    if attempt.usage is not None:
        message.usage.CopyFrom(
            router_pb2.Usage(
                prompt_tokens=attempt.usage.prompt_tokens,
                completion_tokens=attempt.usage.completion_tokens,
                total_tokens=attempt.usage.total_tokens,
            )
        )
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
    )


def event_to_proto(event: RouteEvent) -> router_pb2.RouteEvent:
    when = timestamp_pb2.Timestamp()
    when.FromNanoseconds(int(event.timestamp * 1e9))
    message = router_pb2.RouteEvent(
        time=when,
        status=_ROUTE_STATUSES[event.status],
        chain=event.chain,
        context=event.context,
        model_used=event.model_used,
        latency_ms=event.latency_ms,
        attempts=[attempt_to_proto(a) for a in event.attempts],
        event_id=event.event_id,
        replica_id=event.replica_id,
    )
    usage = event_usage(event)
    if usage is not None:
        message.usage.CopyFrom(
            router_pb2.Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            )
        )
    return message


def stats_to_proto(
    stats: Mapping[str, ModelStats], now: float, *, cluster_wide: bool, replica_id: str
) -> router_pb2.MetricsSnapshot:
    """A snapshot with latency and tokens per model (``snapshot_to_proto`` has counts only)."""
    when = timestamp_pb2.Timestamp()
    when.FromNanoseconds(int(now * 1e9))
    return router_pb2.MetricsSnapshot(
        time=when,
        models=[router_pb2.ModelCounters(model=model, **asdict(s)) for model, s in stats.items()],
        cluster_wide=cluster_wide,
        replica_id=replica_id,
    )


def snapshot_to_proto(
    counters: dict[str, dict[str, int]], now: float
) -> router_pb2.MetricsSnapshot:
    when = timestamp_pb2.Timestamp()
    when.FromNanoseconds(int(now * 1e9))
    return router_pb2.MetricsSnapshot(
        time=when,
        models=[
            router_pb2.ModelCounters(
                model=model, success=c["success"], fallback=c["fallback"], error=c["error"]
            )
            for model, c in counters.items()
        ],
    )


_CIRCUIT_STATES = {
    State.CLOSED: router_pb2.CIRCUIT_STATE_CLOSED,
    State.OPEN: router_pb2.CIRCUIT_STATE_OPEN,
    State.HALF_OPEN: router_pb2.CIRCUIT_STATE_HALF_OPEN,
}


def circuit_change_to_proto(change: Transition, replica_id: str) -> router_pb2.CircuitChange:
    when = timestamp_pb2.Timestamp()
    when.FromNanoseconds(int(change.time * 1e9))
    return router_pb2.CircuitChange(
        time=when,
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


def failure_status(exc: ChainFailedError, code: grpc.StatusCode) -> grpc.Status:
    """The rich status for a failed chain: message plus a typed RouteFailure detail."""
    detail = any_pb2.Any()
    detail.Pack(
        router_pb2.RouteFailure(
            attempts=[attempt_to_proto(a) for a in exc.attempts],
            latency_ms=exc.latency_ms,
            chain=exc.chain,
        )
    )
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=str(exc), details=[detail]
    )
    return rpc_status.to_status(status)


class RouterServicer(router_pb2_grpc.RouterServicer):
    """Implements ``llm_router.v1.Router`` over a ``Router`` chain."""

    def __init__(
        self, router: Router, *, deadline_margin_ms: float = 50.0, watcher_queue: int = 1000
    ) -> None:
        self.router = router
        self.deadline_margin = deadline_margin_ms / 1000
        self.watcher_queue = watcher_queue
        self._event_messages: OrderedDict[
            int, tuple[RouteEvent, router_pb2.WatchMetricsResponse]
        ] = OrderedDict()

    async def Route(  # noqa: N802 (gRPC method name)
        self, request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> router_pb2.RouteResponse:
        remaining = context.time_remaining()
        deadline = Deadline.after(None if remaining is None else remaining - self.deadline_margin)
        try:
            result = await self.router.route(request_from_proto(request), deadline)
        except ChainFailedError as exc:
            status = failure_status(exc, status_code_for(exc))
            await context.abort(status.code, status.details, status.trailing_metadata)
        except LLMRouterError as exc:
            await context.abort(status_code_for(exc), str(exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Route failed unexpectedly")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        return result_to_proto(result)

    async def WatchMetrics(  # noqa: N802 (gRPC method name)
        self, request: router_pb2.WatchMetricsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[router_pb2.WatchMetricsResponse]:
        """A snapshot, then (after the backlog when resuming) each event as it happens, with a
        fresh snapshot every ``snapshot_interval_seconds``. A watcher that reads too slowly
        loses the overflow of its own queue and is told how much in ``missed_events``."""
        if request.snapshot_interval_seconds < 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "snapshot_interval_seconds must be >= 0"
            )
        resume_after = None
        if request.resume_after_event_id:
            try:
                resume_after = parse_event_id(request.resume_after_event_id)
            except ValueError as exc:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"resume_after_event_id: {exc}"
                )
        interval = request.snapshot_interval_seconds or None
        bus = self.router.bus
        accept = event_filter(request.chains, request.models, request.contexts)
        subscription: Subscription = bus.subscribe(self.watcher_queue, accept)
        loop = asyncio.get_running_loop()
        try:
            yield await self._snapshot(set(request.models), subscription)
            if resume_after is not None:
                backlog = await bus.replay(request.resume_after_event_id)
                if backlog is None:
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE,
                        "cannot resume: the metrics event stream (Redis) is unreachable; retry",
                    )
                for old in backlog or ():
                    if accept is None or accept(old):
                        yield self._event_message(old, 0)
                        resume_after = parse_event_id(old.event_id)
            next_snapshot = None if interval is None else loop.time() + interval
            while True:
                try:
                    if next_snapshot is None:
                        event = await subscription.get()
                    else:
                        async with asyncio.timeout_at(next_snapshot):
                            event = await subscription.get()
                except TimeoutError:
                    yield await self._snapshot(set(request.models), subscription)
                    next_snapshot = loop.time() + (interval or 0)
                    continue
                if isinstance(event, Transition):
                    if not request.models or event.model in request.models:
                        yield router_pb2.WatchMetricsResponse(
                            circuit=circuit_change_to_proto(event, bus.replica_id),
                            missed_events=subscription.take_missed(),
                        )
                    continue
                if resume_after is not None and event.event_id:
                    if parse_event_id(event.event_id) <= resume_after:
                        continue
                    resume_after = None
                yield self._event_message(event, subscription.take_missed())
        finally:
            bus.unsubscribe(subscription)

    def _event_message(self, event: RouteEvent, missed: int) -> router_pb2.WatchMetricsResponse:
        """The stream message for an event; its proto is built once for all watchers."""
        cached = self._event_messages.get(id(event))
        if cached is None or cached[0] is not event:
            cached = (event, router_pb2.WatchMetricsResponse(event=event_to_proto(event)))
            self._event_messages[id(event)] = cached
            if len(self._event_messages) > 64:
                self._event_messages.popitem(last=False)
        if not missed:
            return cached[1]  # shared by every watcher: never modified after this point
        return router_pb2.WatchMetricsResponse(event=cached[1].event, missed_events=missed)

    async def _snapshot(
        self, models: set[str], subscription: Subscription
    ) -> router_pb2.WatchMetricsResponse:
        """Cluster-wide counters when the bus has them, else this replica's own."""
        bus = self.router.bus
        shared = await bus.cluster_stats()
        stats = shared if shared is not None else self.router.counters.stats()
        circuits = await self.router.breaker.states(
            spec for chain in self.router.chains.values() for spec in chain.models
        )
        if models:
            stats = {m: s for m, s in stats.items() if m in models}
            circuits = {m: c for m, c in circuits.items() if m in models}
        snapshot = stats_to_proto(
            stats, time.time(), cluster_wide=shared is not None, replica_id=bus.replica_id
        )
        add_circuits(snapshot, circuits)
        return router_pb2.WatchMetricsResponse(
            snapshot=snapshot, missed_events=subscription.take_missed()
        )
