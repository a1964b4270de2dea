"""Metrics: per-model counters, and the bus that carries one event per Route call.

The chain hands each finished call's ``RouteEvent`` to ``MetricsBus.publish``,
which must return at once and never raise: a slow or dead metrics backend must
not slow a Route call. ``InMemoryMetricsBus`` is the embedded default and the
fake of the seam; ``RedisMetricsBus`` (``redis_bus.py``) shares events and
counters between replicas.

Watchers get a ``Subscription``: a bounded queue per watcher. When a watcher
reads too slowly its queue overflows; the overflow is counted (``missed``) and
reported to it, and nobody else waits.

The JSON payload (``event_payload``) keeps the seed's fields (``model_used``,
``latency_ms``, ``attempts`` with model/outcome/reason/latency_ms,
``metrics_snapshot``, ``timestamp``) and adds the rest. It never holds prompt or
answer text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from bisect import bisect_left
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from llm_router_server.breaker.rules import Transition
from llm_router_server.types import (
    Attempt,
    Category,
    Outcome,
    RouteEvent,
    RouteStatus,
    Usage,
)

logger = logging.getLogger(__name__)

METRICS_CHANNEL = "llm_router_metrics"

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    *(1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 750),
    *(1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000, 60000, 120000),
)
"""Upper bounds of the attempt-latency histogram (ms); a last bucket takes the rest."""

COUNT_KINDS = ("success", "fallback", "error")
TOKEN_KINDS = ("prompt_tokens", "completion_tokens", "total_tokens")

EventFilter = Callable[[RouteEvent], bool]


def classify(attempts: Iterable[Attempt]) -> list[tuple[Attempt, str]]:
    """Each attempt that ran with its counter: ``success``; ``fallback`` (rejected, the chain
    went on); ``error`` (rejected, and it was the last attempt of its call). Skipped
    attempts did not run and are left out."""
    tried = [a for a in attempts if a.outcome is not Outcome.SKIPPED]
    kinds = []
    for i, attempt in enumerate(tried):
        if attempt.outcome is Outcome.SUCCESS:
            kinds.append((attempt, "success"))
        elif i < len(tried) - 1:
            kinds.append((attempt, "fallback"))
        else:
            kinds.append((attempt, "error"))
    return kinds


def latency_bucket(latency_ms: float) -> int:
    """Index of the histogram bucket for a latency (``len(LATENCY_BUCKETS_MS)``: above all)."""
    return bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def percentile(buckets: Mapping[int, int], q: float) -> float:
    """The ``q`` quantile (0..1) of a bucketed histogram, interpolated inside its bucket."""
    total = sum(buckets.values())
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for index in sorted(buckets):
        count = buckets[index]
        if count and seen + count >= rank:
            low = LATENCY_BUCKETS_MS[index - 1] if index > 0 else 0.0
            high = LATENCY_BUCKETS_MS[min(index, len(LATENCY_BUCKETS_MS) - 1)]
            if index >= len(LATENCY_BUCKETS_MS):
                return float(high)
            return low + (high - low) * (rank - seen) / count
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])


@dataclass(frozen=True)
class ModelStats:
    """What a snapshot says about one model."""

    success: int = 0
    fallback: int = 0
    error: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


def build_stats(
    counts: Mapping[str, Mapping[str, int]], latency: Mapping[str, Mapping[int, int]]
) -> dict[str, ModelStats]:
    """ModelStats per model (in name order) from raw counters and latency buckets."""
    stats = {}
    for model in sorted(set(counts) | set(latency)):
        c = counts.get(model, {})
        buckets = latency.get(model, {})
        stats[model] = ModelStats(
            **{k: int(c.get(k, 0)) for k in (*COUNT_KINDS, *TOKEN_KINDS)},
            latency_p50_ms=round(percentile(buckets, 0.50), 3),
            latency_p95_ms=round(percentile(buckets, 0.95), 3),
        )
    return stats


def increments(event: RouteEvent) -> tuple[dict[str, int], dict[str, int]]:
    """What one event adds to the counters: ``({"model|kind": n}, {"model|bucket": n})``.
    The field names are those of the Redis hashes; ``parse_field`` splits them again."""
    counts: dict[str, int] = {}
    latency: dict[str, int] = {}
    for attempt, kind in classify(event.attempts):
        m = attempt.model
        counts[f"{m}|{kind}"] = counts.get(f"{m}|{kind}", 0) + 1
        if attempt.usage is not None:
            for name in TOKEN_KINDS:
                counts[f"{m}|{name}"] = counts.get(f"{m}|{name}", 0) + getattr(attempt.usage, name)
        field = f"{m}|{latency_bucket(attempt.latency_ms)}"
        latency[field] = latency.get(field, 0) + 1
    return counts, latency


def parse_field(field: str) -> tuple[str, str]:
    """``"ollama_chat/qwen2.5:7b|success"`` -> ``("ollama_chat/qwen2.5:7b", "success")``."""
    model, _, key = field.rpartition("|")
    return model, key


class ModelCounters:
    """This process's counters per model: ``success``, ``fallback``, ``error`` (see
    ``classify``), tokens, and an attempt-latency histogram."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}
        self._latency: dict[str, dict[int, int]] = {}

    def record_call(self, attempts: tuple[Attempt, ...]) -> None:
        for attempt, kind in classify(attempts):
            counts = self._counts.setdefault(
                attempt.model, {"success": 0, "fallback": 0, "error": 0}
            )
            counts[kind] += 1
            if attempt.usage is not None:
                for name in TOKEN_KINDS:
                    counts[name] = counts.get(name, 0) + getattr(attempt.usage, name)
            buckets = self._latency.setdefault(attempt.model, {})
            index = latency_bucket(attempt.latency_ms)
            buckets[index] = buckets.get(index, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """The seed's shape: ``{model: {"success": n, "fallback": n, "error": n}}``."""
        return {
            model: {k: counts[k] for k in COUNT_KINDS}
            for model, counts in sorted(self._counts.items())
        }

    def stats(self) -> dict[str, ModelStats]:
        return build_stats(self._counts, self._latency)


def event_usage(event: RouteEvent) -> Usage | None:
    """Tokens summed over the attempts that reported usage; None when none did."""
    reported = [a.usage for a in event.attempts if a.usage is not None]
    if not reported:
        return None
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in reported),
        completion_tokens=sum(u.completion_tokens for u in reported),
        total_tokens=sum(u.total_tokens for u in reported),
    )


def _usage_dict(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {k: getattr(usage, k) for k in TOKEN_KINDS}


def event_payload(event: RouteEvent) -> dict[str, Any]:
    """The JSON payload of an event: the seed's fields first, then chain, context, status,
    usage, replica and (when known) event id. No prompt or answer text."""
    payload: dict[str, Any] = {
        "model_used": event.model_used,
        "latency_ms": round(event.latency_ms),
        "attempts": [
            {
                "model": a.model,
                "outcome": a.outcome.value,
                "reason": a.reason or None,
                "latency_ms": round(a.latency_ms),
                "category": a.category.value,
                "usage": _usage_dict(a.usage),
            }
            for a in event.attempts
        ],
        "metrics_snapshot": {m: dict(c) for m, c in event.metrics_snapshot.items()},
        "timestamp": event.timestamp,
        "status": event.status.value,
        "chain": event.chain,
        "context": event.context,
        "usage": _usage_dict(event_usage(event)),
        "replica_id": event.replica_id,
    }
    if event.event_id:
        payload["event_id"] = event.event_id
    return payload


def event_json(event: RouteEvent) -> str:
    return json.dumps(event_payload(event), separators=(",", ":"))


def _usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(*(int(raw.get(k, 0)) for k in TOKEN_KINDS))


def event_from_payload(payload: Mapping[str, Any], event_id: str = "") -> RouteEvent:
    """The event back from its JSON payload (as read from Redis). Raises ValueError,
    KeyError or TypeError on a payload this code did not write."""
    return RouteEvent(
        timestamp=float(payload["timestamp"]),
        status=RouteStatus(payload.get("status", "ok")),
        chain=str(payload.get("chain", "")),
        context=str(payload.get("context", "")),
        model_used=str(payload["model_used"]),
        latency_ms=float(payload["latency_ms"]),
        attempts=tuple(
            Attempt(
                model=str(a["model"]),
                outcome=Outcome(a["outcome"]),
                category=Category(a.get("category", "none")),
                reason=a.get("reason") or "",
                latency_ms=float(a["latency_ms"]),
                usage=_usage_from(a.get("usage")),
            )
            for a in payload["attempts"]
        ),
        metrics_snapshot=dict(payload.get("metrics_snapshot") or {}),
        event_id=event_id or str(payload.get("event_id", "")),
        replica_id=str(payload.get("replica_id", "")),
    )


def parse_event_id(event_id: str) -> tuple[int, int]:
    """``"1718000000000-3"`` -> ``(1718000000000, 3)``; ValueError when it is not one."""
    ms, sep, seq = event_id.partition("-")
    if not (sep and ms.isdigit() and seq.isdigit()):
        raise ValueError(f"not an event id like '1718000000000-0': {event_id!r}")
    return int(ms), int(seq)


def event_filter(
    chains: Iterable[str] = (), models: Iterable[str] = (), contexts: Iterable[str] = ()
) -> EventFilter | None:
    """A predicate for a watcher's filters (each empty set matches all); None when no filter."""
    chain_set, model_set, context_set = set(chains), set(models), set(contexts)
    if not (chain_set or model_set or context_set):
        return None

    def accept(event: RouteEvent) -> bool:
        return (
            (not chain_set or event.chain in chain_set)
            and (not context_set or event.context in context_set)
            and (not model_set or any(a.model in model_set for a in event.attempts))
        )

    return accept


Notice = RouteEvent | Transition
"""What a watcher's queue holds: Route events, and this replica's circuit changes."""


class Subscription:
    """One watcher's bounded queue of events. ``missed`` counts what overflowed."""

    def __init__(self, maxsize: int, accept: EventFilter | None = None) -> None:
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize)
        self.accept = accept
        self.missed = 0
        self._reported = 0

    def offer(self, event: RouteEvent) -> None:
        """Queue an event if it passes the filter; count it as missed if the queue is full."""
        if self.accept is not None and not self.accept(event):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.missed += 1

    def offer_change(self, change: Transition) -> None:
        """Queue a circuit change (not filtered: the watcher filters by model itself)."""
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.missed += 1

    def take_missed(self) -> int:
        """Events missed since the last call (to report them to the watcher once)."""
        new = self.missed - self._reported
        self._reported = self.missed
        return new

    async def get(self) -> Notice:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[Notice]:
        return self

    async def __anext__(self) -> Notice:
        return await self._queue.get()


@dataclass(frozen=True)
class BusStats:
    """How the bus is doing, for the Prometheus endpoint and logs."""

    published: int
    """Events handed to ``publish`` by this process."""
    dropped: int
    """Events lost because the publish buffer was full (Redis slow or down)."""
    buffered: int
    """Events waiting to be sent."""
    watchers: int
    """Subscriptions open now."""
    watcher_missed: int
    """Events that overflowed a watcher's queue, summed over closed and open watchers."""
    connected: bool
    """The backend is reachable (always true in-process)."""


class MetricsBus(Protocol):
    """Carries Route events to whoever watches."""

    replica_id: str

    async def start(self) -> None:
        """Start background work (connections, senders). Never fails when a backend is down."""

    def publish(self, event: RouteEvent) -> None:
        """Hand one event over. Returns at once; never raises; never waits for I/O."""

    def observe(self, callback: Callable[[RouteEvent], None]) -> None:
        """Call ``callback`` with each event this process publishes, inside ``publish``
        (for local exporters such as Prometheus). It must be quick; errors are logged."""

    def subscribe(self, maxsize: int = 1000, accept: EventFilter | None = None) -> Subscription:
        """Start receiving events (every replica's, where the bus is shared) into a bounded
        queue, keeping only those ``accept`` lets through."""

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop receiving events."""

    def notice(self, change: Transition) -> None:
        """Hand one of this replica's circuit changes to its local watchers. Never blocks."""

    async def replay(self, after_id: str) -> Sequence[RouteEvent] | None:
        """Events held after ``after_id``, oldest first; None when they cannot be read now."""

    async def cluster_stats(self) -> Mapping[str, ModelStats] | None:
        """Counters shared by every replica; None when there are none (in-process, or the
        backend is unreachable): the caller then uses this process's own."""

    def stats(self) -> BusStats:
        """Counts for monitoring the bus itself."""

    async def aclose(self) -> None:
        """Flush what can be flushed quickly and release connections."""


class EventIds:
    """Event ids in Redis Stream form (``"<unix ms>-<seq>"``), increasing."""

    def __init__(self) -> None:
        self._last = (0, 0)

    def next(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, seq + 1)
        return f"{self._last[0]}-{self._last[1]}"


class Fanout:
    """The watchers of one process and the local observers: shared by both buses."""

    def __init__(self) -> None:
        self.subscriptions: set[Subscription] = set()
        self.observers: list[Callable[[RouteEvent], None]] = []
        self.closed_missed = 0

    def notify_observers(self, event: RouteEvent) -> None:
        for callback in self.observers:
            try:
                callback(event)
            except Exception:
                logger.exception("metrics observer %r failed", callback)

    def deliver(self, event: RouteEvent) -> None:
        for subscription in tuple(self.subscriptions):
            subscription.offer(event)

    def deliver_change(self, change: Transition) -> None:
        for subscription in tuple(self.subscriptions):
            subscription.offer_change(change)

    def add(self, maxsize: int, accept: EventFilter | None) -> Subscription:
        subscription = Subscription(maxsize, accept)
        self.subscriptions.add(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        if subscription in self.subscriptions:
            self.subscriptions.discard(subscription)
            self.closed_missed += subscription.missed

    def missed(self) -> int:
        return self.closed_missed + sum(s.missed for s in self.subscriptions)


class LocalWatchers:
    """The part of a bus that serves this process: observers, watchers, circuit notices.
    Both buses build on it; what differs is where published events go."""

    def __init__(self) -> None:
        self._fanout = Fanout()

    def observe(self, callback: Callable[[RouteEvent], None]) -> None:
        self._fanout.observers.append(callback)

    def subscribe(self, maxsize: int = 1000, accept: EventFilter | None = None) -> Subscription:
        return self._fanout.add(maxsize, accept)

    def unsubscribe(self, subscription: Subscription) -> None:
        self._fanout.remove(subscription)

    def notice(self, change: Transition) -> None:
        # Local watchers only: each replica reports the changes it made; snapshots read
        # the (possibly shared) circuit state for the whole picture.
        self._fanout.deliver_change(change)

    def _close_watchers(self) -> None:
        for subscription in tuple(self._fanout.subscriptions):
            self._fanout.remove(subscription)


class InMemoryMetricsBus(LocalWatchers):
    """The embedded default: events go to this process's watchers only. The last
    ``history`` events are kept so that a watcher can resume after an event id."""

    def __init__(self, replica_id: str = "", history: int = 10000) -> None:
        super().__init__()
        self.replica_id = replica_id
        self.published = 0
        self._ids = EventIds()
        self._history: deque[RouteEvent] = deque(maxlen=history)

    async def start(self) -> None:
        return None

    def publish(self, event: RouteEvent) -> None:
        self.published += 1
        event = replace(event, event_id=self._ids.next(), replica_id=self.replica_id)
        self._history.append(event)
        self._fanout.notify_observers(event)
        self._fanout.deliver(event)

    async def replay(self, after_id: str) -> Sequence[RouteEvent] | None:
        after = parse_event_id(after_id)
        return [e for e in self._history if parse_event_id(e.event_id) > after]

    async def cluster_stats(self) -> Mapping[str, ModelStats] | None:
        return None

    def stats(self) -> BusStats:
        return BusStats(
            published=self.published,
            dropped=0,
            buffered=0,
            watchers=len(self._fanout.subscriptions),
            watcher_missed=self._fanout.missed(),
            connected=True,
        )

    async def aclose(self) -> None:
        self._close_watchers()
