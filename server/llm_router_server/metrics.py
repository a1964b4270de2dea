"""Metrics: per-model counters, and the bus that carries one event per Route call.

The chain hands each finished call's ``RouteEvent`` to ``MetricsBus.publish``,
which must return at once and never raise: a slow or dead metrics backend must
not slow a Route call. ``InMemoryMetricsBus`` is the embedded default and the
fake of the seam; a Redis-backed bus lives in its own module.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from llm_router_server.types import Attempt, Outcome, RouteEvent

logger = logging.getLogger(__name__)

METRICS_CHANNEL = "llm_router_metrics"


class ModelCounters:
    """Counts per model: ``success``, ``fallback`` (rejected, the chain went on) and ``error``
    (rejected, and it was the last attempt of its call). Skipped attempts are not counted."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}

    def record_call(self, attempts: tuple[Attempt, ...]) -> None:
        tried = [a for a in attempts if a.outcome is not Outcome.SKIPPED]
        for i, attempt in enumerate(tried):
            if attempt.outcome is Outcome.SUCCESS:
                key = "success"
            elif i < len(tried) - 1:
                key = "fallback"
            else:
                key = "error"
            counts = self._counts.setdefault(
                attempt.model, {"success": 0, "fallback": 0, "error": 0}
            )
            counts[key] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {model: dict(counts) for model, counts in sorted(self._counts.items())}


def event_payload(event: RouteEvent) -> dict[str, Any]:
    """The JSON payload of an event: the seed's fields, plus chain, context and status."""
    return {
        "model_used": event.model_used,
        "latency_ms": round(event.latency_ms),
        "attempts": [
            {
                "model": a.model,
                "outcome": a.outcome.value,
                "reason": a.reason or None,
                "latency_ms": round(a.latency_ms),
                "category": a.category.value,
                "usage": None
                if a.usage is None
                else {
                    "prompt_tokens": a.usage.prompt_tokens,
                    "completion_tokens": a.usage.completion_tokens,
                    "total_tokens": a.usage.total_tokens,
                },
            }
            for a in event.attempts
        ],
        "metrics_snapshot": {m: dict(c) for m, c in event.metrics_snapshot.items()},
        "timestamp": event.timestamp,
        "status": event.status.value,
        "chain": event.chain,
        "context": event.context,
    }


def event_json(event: RouteEvent) -> str:
    return json.dumps(event_payload(event), separators=(",", ":"))


class Subscription:
    """One watcher's bounded queue of events. ``missed`` counts what overflowed."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[RouteEvent] = asyncio.Queue(maxsize)
        self.missed = 0

    def offer(self, event: RouteEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.missed += 1

    async def get(self) -> RouteEvent:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[RouteEvent]:
        return self

    async def __anext__(self) -> RouteEvent:
        return await self._queue.get()


class MetricsBus(Protocol):
    """Carries Route events to whoever watches."""

    def publish(self, event: RouteEvent) -> None:
        """Hand one event over. Returns at once; never raises; never waits for I/O."""

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        """Start receiving events into a bounded queue."""

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop receiving events."""

    async def aclose(self) -> None:
        """Flush what can be flushed quickly and release connections."""


@dataclass
class InMemoryMetricsBus:
    """The embedded default: events go to this process's watchers only."""

    def __post_init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self.published = 0

    def publish(self, event: RouteEvent) -> None:
        self.published += 1
        for subscription in tuple(self._subscriptions):
            subscription.offer(event)

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        subscription = Subscription(maxsize)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def aclose(self) -> None:
        self._subscriptions.clear()
