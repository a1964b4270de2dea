"""The gRPC face of the router: the ``llm_router.v1.Router`` RPCs over a ``Router`` chain.

Decoding requests, encoding replies and the status table are in ``convert.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc

from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server.breaker.rules import Transition
from llm_router_server.errors import ChainFailedError, LLMRouterError
from llm_router_server.metrics.bus import parse_event_id
from llm_router_server.metrics.watchers import Subscription, event_filter
from llm_router_server.routing.chain import Router
from llm_router_server.service.convert import (
    add_circuits,
    circuit_change_to_proto,
    failure_status,
    request_from_proto,
    result_to_proto,
    stats_to_proto,
    status_code_for,
    status_message,
)
from llm_router_server.service.watch_frames import WatchFrames
from llm_router_server.types import Deadline, RouteEvent

MAX_EVENTS_PER_MESSAGE = 1000
"""The largest ``max_events_per_message`` a watcher may ask for."""
MAX_BATCH_INTERVAL_MS = 60_000
"""The longest ``batch_interval_ms`` a watcher may ask for."""

logger = logging.getLogger(__name__)


class RouterServicer(router_pb2_grpc.RouterServicer):
    """Implements ``llm_router.v1.Router`` over a ``Router`` chain."""

    def __init__(
        self, router: Router, *, deadline_margin_ms: float = 50.0, watcher_queue: int = 1000
    ) -> None:
        self.router = router
        self.deadline_margin = deadline_margin_ms / 1000
        self.watcher_queue = watcher_queue
        self._frames = WatchFrames(capacity=2 * watcher_queue + 256)

    async def Route(  # noqa: N802 (gRPC method name)
        self, request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> router_pb2.RouteResponse:
        remaining = context.time_remaining()
        deadline = Deadline.after(None if remaining is None else remaining - self.deadline_margin)
        try:
            result = await self.router.route(request_from_proto(request), deadline)
        except ChainFailedError as exc:
            status = failure_status(exc)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except LLMRouterError as exc:
            await context.abort(status_code_for(exc), status_message(exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Route failed unexpectedly")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        return result_to_proto(result)

    async def WatchMetrics(  # type: ignore[override]  # noqa: N802 (gRPC method name)
        self, request: router_pb2.WatchMetricsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[WatchMessage]:
        """A snapshot, then (after the backlog when resuming) each event as it happens, with a
        fresh snapshot every ``snapshot_interval_seconds``. A watcher that reads too slowly
        loses the overflow of its own queue and is told how much in ``missed_events``.
        With ``max_events_per_message`` events go several to a message (``EventBatch``),
        at most one message per ``batch_interval_ms``. Events go out as bytes serialized
        once for every watcher (``watch_frames.py``; ``add_router_to_server`` registers the
        serializer that lets them through)."""
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
        problem = batch_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        batch = request.max_events_per_message
        interval = request.snapshot_interval_seconds or None
        bus = self.router.bus
        accept = event_filter(request.chains, request.models, request.contexts)
        subscription: Subscription = bus.subscribe(self.watcher_queue, accept, batched=batch > 0)
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
                held = [old for old in backlog or () if accept is None or accept(old)]
                if held:
                    resume_after = parse_event_id(held[-1].event_id)
                if batch:
                    for message in self._batch_messages(held, batch, 0):
                        yield message
                else:
                    for old in held:
                        yield self._frames.event_message(old)
            next_snapshot = None if interval is None else loop.time() + interval
            pause = request.batch_interval_ms / 1000
            while True:
                next_notice = subscription.get_batch(batch, pause) if batch else subscription.get()
                try:
                    if next_snapshot is None:
                        event = await next_notice
                    else:
                        async with asyncio.timeout_at(next_snapshot):
                            event = await next_notice
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
                if isinstance(event, list):
                    if resume_after is not None:
                        event = [e for e in event if not _seen(e, resume_after)]
                        if not event:
                            continue
                        resume_after = None
                    for message in self._batch_messages(event, batch, subscription.take_missed()):
                        yield message
                    continue
                if resume_after is not None and event.event_id:
                    if _seen(event, resume_after):
                        continue
                    resume_after = None
                yield self._frames.event_message(event, subscription.take_missed())
        finally:
            bus.unsubscribe(subscription)

    def _batch_messages(self, events: list[RouteEvent], most: int, missed: int) -> Iterator[bytes]:
        """``events`` in messages of at most ``most`` (and ``MAX_BATCH_BYTES``) each."""
        while events:
            n = self._frames.fits(events[:most])
            yield self._frames.batch_message(events[:n], missed)
            events, missed = events[n:], 0

    async def _snapshot(
        self, models: set[str], subscription: Subscription
    ) -> router_pb2.WatchMetricsResponse:
        """Cluster-wide counters when the bus has them, else this replica's own."""
        bus = self.router.bus
        shared = await bus.cluster_stats()
        stats = shared if shared is not None else self.router.counters.stats()
        shared_chains = await bus.cluster_chain_stats() if shared is not None else None
        chains = shared_chains if shared_chains is not None else self.router.chain_counters.stats()
        circuits = await self.router.breaker.states(
            spec for chain in self.router.chains.values() for spec in chain.models
        )
        if models:
            stats = {m: s for m, s in stats.items() if m in models}
            circuits = {m: c for m, c in circuits.items() if m in models}
        snapshot = stats_to_proto(
            stats,
            time.time(),
            cluster_wide=shared is not None,
            replica_id=bus.replica_id,
            chains=chains,
        )
        add_circuits(snapshot, circuits)
        return router_pb2.WatchMetricsResponse(
            snapshot=snapshot, missed_events=subscription.take_missed()
        )


def batch_problem(request: router_pb2.WatchMetricsRequest) -> str:
    """What is wrong with a WatchMetrics request's batch fields ("" when nothing)."""
    if request.max_events_per_message > MAX_EVENTS_PER_MESSAGE:
        return (
            f"max_events_per_message must be at most {MAX_EVENTS_PER_MESSAGE} "
            f"(0: one event per message), not {request.max_events_per_message}"
        )
    if request.batch_interval_ms > MAX_BATCH_INTERVAL_MS:
        return (
            f"batch_interval_ms must be at most {MAX_BATCH_INTERVAL_MS}, "
            f"not {request.batch_interval_ms}"
        )
    if request.batch_interval_ms and not request.max_events_per_message:
        return "batch_interval_ms needs max_events_per_message (events per message) above 0"
    return ""


def _seen(event: RouteEvent, resume_after: tuple[int, int]) -> bool:
    """The event came at or before the one the watcher resumes after."""
    return bool(event.event_id) and parse_event_id(event.event_id) <= resume_after


# -- registration: WatchMetrics may yield serialized bytes (issue 14) ------------------------

WatchMessage = router_pb2.WatchMetricsResponse | bytes
"""What WatchMetrics yields: a message, or one already serialized (shared by watchers)."""


def serialize_watch_message(message: WatchMessage) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def router_handlers(servicer: RouterServicer) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The Router service's method handlers, as the generated ``add_RouterServicer_to_server``
    builds them, except that WatchMetrics's serializer lets bytes through."""
    return {
        "Route": grpc.unary_unary_rpc_method_handler(
            servicer.Route,
            request_deserializer=router_pb2.RouteRequest.FromString,
            response_serializer=router_pb2.RouteResponse.SerializeToString,
        ),
        "WatchMetrics": grpc.unary_stream_rpc_method_handler(
            servicer.WatchMetrics,
            request_deserializer=router_pb2.WatchMetricsRequest.FromString,
            response_serializer=serialize_watch_message,
        ),
    }


def add_router_to_server(servicer: RouterServicer, server: grpc.aio.Server) -> None:
    """Register the Router service (``router_handlers``) on ``server``."""
    handlers = router_handlers(servicer)
    service = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)
