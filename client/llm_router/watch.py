"""WatchMetrics as typed messages, with resume: ``client.watch()`` yields a
``MetricsSnapshot`` first, then a ``RouteEvent`` per finished call and a ``CircuitChange``
per circuit-breaker change, and snapshots every ``interval`` seconds.

    async with AsyncRouterClient.from_env() as router:
        async for message in router.watch(interval=10, contexts=["supervisor.reconcile"]):
            match message:
                case RouteEvent(status="ok"):
                    print(message.model_used, message.latency_ms)
                case RouteEvent():
                    print(message.status, [a.reason for a in message.attempts])

With ``reconnect=True`` (the default) a stream that breaks after it was open (the replica
restarted, the network dropped) is opened again, with a backoff of 0.1 s doubling to 5 s,
asking the server to replay the events after the last one seen (``resume_after_event_id``;
with Redis any replica can, within the stream's length). A failure to open the first
stream is raised at once. Every message keeps its generated form in ``.raw``.

The client asks for events in batches (``batch``, up to 1,000 a stream message, and
``batch_interval``, the least seconds between two such messages) and yields them one by
one; ``batch=0`` asks for one event per stream message, as servers before batches send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import grpc.aio

from llm_router.connection import Connection
from llm_router.errors import RouterError, translate
from llm_router.results import Attempt, Usage, attempt_from_proto, enum_names, usage_from_proto
from llm_router.v1 import router_pb2, router_pb2_grpc

_STATUSES = enum_names(router_pb2.RouteStatus, "ROUTE_STATUS_")
_CIRCUITS = enum_names(router_pb2.CircuitState, "CIRCUIT_STATE_")
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
BATCH = 1000
"""Events the client asks the server to put in one stream message (it yields them one by
one all the same): a busy replica then sends a few messages instead of one per call."""


@dataclass(frozen=True)
class ModelCounters:
    """One model's counters; ``circuit`` is closed/open/half_open, or "" when unknown."""

    model: str
    success: int
    fallback: int
    error: int
    latency_p50_ms: float
    latency_p95_ms: float
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    circuit: str
    circuit_reason: str


@dataclass(frozen=True)
class MetricsSnapshot:
    """The per-model counters at ``time``; cluster-wide when the server shares Redis."""

    time: datetime
    models: tuple[ModelCounters, ...]
    cluster_wide: bool
    replica_id: str
    missed_events: int = 0
    """Events this watcher missed just before this message (it read too slowly)."""
    raw: router_pb2.WatchMetricsResponse = field(
        default_factory=router_pb2.WatchMetricsResponse, repr=False, compare=False
    )


@dataclass(frozen=True)
class RouteEvent:
    """One finished Route call. ``status`` is ok/all_failed/deadline_exceeded/cancelled/
    refused; ``event_id`` resumes a stream after this event."""

    event_id: str
    time: datetime
    status: str
    chain: str
    context: str
    model_used: str
    latency_ms: float
    attempts: tuple[Attempt, ...]
    replica_id: str
    usage: Usage | None
    missed_events: int = 0
    raw: router_pb2.WatchMetricsResponse = field(
        default_factory=router_pb2.WatchMetricsResponse, repr=False, compare=False
    )


@dataclass(frozen=True)
class CircuitChange:
    """A model's circuit breaker changed state (closed/open/half_open) on ``replica_id``."""

    time: datetime
    model: str
    api_base: str
    from_state: str
    to_state: str
    reason: str
    cool_down_seconds: float
    replica_id: str
    missed_events: int = 0
    raw: router_pb2.WatchMetricsResponse = field(
        default_factory=router_pb2.WatchMetricsResponse, repr=False, compare=False
    )


WatchMessage = MetricsSnapshot | RouteEvent | CircuitChange


def messages_from_proto(m: router_pb2.WatchMetricsResponse) -> list[WatchMessage]:
    """The typed messages of one stream message: a batch of events is one ``RouteEvent``
    each (the first carries the batch's ``missed_events``; each ``.raw`` is the event as a
    message of its own); a kind newer than this client is none."""
    if m.WhichOneof("kind") != "events":
        message = message_from_proto(m)
        return [] if message is None else [message]
    out: list[WatchMessage] = []
    missed = m.missed_events
    for e in m.events.events:
        one = message_from_proto(router_pb2.WatchMetricsResponse(event=e, missed_events=missed))
        assert one is not None
        out.append(one)
        missed = 0
    return out


def message_from_proto(m: router_pb2.WatchMetricsResponse) -> WatchMessage | None:
    """The typed message; None for a kind newer than this client (or a batch: see
    ``messages_from_proto``)."""
    kind = m.WhichOneof("kind")
    if kind == "snapshot":
        s = m.snapshot
        return MetricsSnapshot(
            time=s.time.ToDatetime(),
            models=tuple(
                ModelCounters(
                    model=c.model,
                    success=c.success,
                    fallback=c.fallback,
                    error=c.error,
                    latency_p50_ms=c.latency_p50_ms,
                    latency_p95_ms=c.latency_p95_ms,
                    prompt_tokens=c.prompt_tokens,
                    completion_tokens=c.completion_tokens,
                    total_tokens=c.total_tokens,
                    circuit=_CIRCUITS.get(c.circuit, str(c.circuit)),
                    circuit_reason=c.circuit_reason,
                )
                for c in s.models
            ),
            cluster_wide=s.cluster_wide,
            replica_id=s.replica_id,
            missed_events=m.missed_events,
            raw=m,
        )
    if kind == "event":
        e = m.event
        return RouteEvent(
            event_id=e.event_id,
            time=e.time.ToDatetime(),
            status=_STATUSES.get(e.status, str(e.status)),
            chain=e.chain,
            context=e.context,
            model_used=e.model_used,
            latency_ms=e.latency_ms,
            attempts=tuple(attempt_from_proto(a) for a in e.attempts),
            replica_id=e.replica_id,
            usage=usage_from_proto(e),
            missed_events=m.missed_events,
            raw=m,
        )
    if kind == "circuit":
        c = m.circuit
        return CircuitChange(
            time=c.time.ToDatetime(),
            model=c.model,
            api_base=c.api_base,
            from_state=_CIRCUITS.get(c.from_state, str(c.from_state)),
            to_state=_CIRCUITS.get(c.to_state, str(c.to_state)),
            reason=c.reason,
            cool_down_seconds=c.cool_down_seconds,
            replica_id=c.replica_id,
            missed_events=m.missed_events,
            raw=m,
        )
    return None


def watch_request(
    *,
    interval: float,
    chains: Sequence[str],
    models: Sequence[str],
    contexts: Sequence[str],
    resume_after: str,
    batch: int = BATCH,
    batch_interval: float = 0.0,
) -> router_pb2.WatchMetricsRequest:
    return router_pb2.WatchMetricsRequest(
        snapshot_interval_seconds=interval,
        chains=chains,
        models=models,
        contexts=contexts,
        resume_after_event_id=resume_after,
        max_events_per_message=batch,
        batch_interval_ms=round(batch_interval * 1000) if batch else 0,
    )


@dataclass
class _Resume:
    """What a reconnect needs: the request to send again, and how long to wait first."""

    request: router_pb2.WatchMetricsRequest
    reconnect: bool
    connected: bool = False
    backoff: float = BACKOFF_FIRST

    def seen(self, m: router_pb2.WatchMetricsResponse) -> None:
        self.connected = True
        self.backoff = BACKOFF_FIRST
        kind = m.WhichOneof("kind")
        if kind == "event" and m.event.event_id:
            self.request = replace_resume(self.request, m.event.event_id)
        elif kind == "events" and m.events.events and m.events.events[-1].event_id:
            self.request = replace_resume(self.request, m.events.events[-1].event_id)

    def retry_after(self, error: RouterError) -> float:
        """Seconds to wait before reopening, or raise ``error`` when not to reopen."""
        if not (self.reconnect and self.connected and error.code is grpc.StatusCode.UNAVAILABLE):
            raise error
        wait, self.backoff = self.backoff, min(self.backoff * 2, BACKOFF_MAX)
        return wait


def replace_resume(
    request: router_pb2.WatchMetricsRequest, event_id: str
) -> router_pb2.WatchMetricsRequest:
    again = router_pb2.WatchMetricsRequest()
    again.CopyFrom(request)
    again.resume_after_event_id = event_id
    return again


def watch_blocking(
    stub: router_pb2_grpc.RouterStub,
    connection: Connection,
    request: router_pb2.WatchMetricsRequest,
    reconnect: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> Generator[WatchMessage, None, None]:
    state = _Resume(request, reconnect)
    while True:
        call: Any = stub.WatchMetrics(state.request, metadata=connection.metadata)
        try:
            for m in call:
                state.seen(m)
                yield from messages_from_proto(m)
            return
        except grpc.RpcError as exc:
            wait = state.retry_after(translate(exc, connection))
        finally:
            call.cancel()
        sleep(wait)


async def watch_async(
    stub: router_pb2_grpc.RouterStub,
    connection: Connection,
    request: router_pb2.WatchMetricsRequest,
    reconnect: bool,
) -> AsyncGenerator[WatchMessage, None]:
    state = _Resume(request, reconnect)
    while True:
        call: Any = stub.WatchMetrics(state.request, metadata=connection.metadata)
        try:
            async for m in call:
                state.seen(m)
                for message in messages_from_proto(m):
                    yield message
            return
        except grpc.aio.AioRpcError as exc:
            wait = state.retry_after(translate(exc, connection))
        finally:
            call.cancel()
        await asyncio.sleep(wait)
