"""``LiveFeed``: the WatchMetrics stream as JSON messages, for the live page (``web.py``).

It reads what ``Router.WatchMetrics`` reads, from the same places: a subscription to the
metrics bus (with Redis, every replica's events), snapshots with the cluster-wide
counters when the bus has them (else this replica's own) and the circuit states, and
this replica's circuit changes. Each message is one JSON object with one of the keys of
``WatchMetricsResponse`` and the proto's field names:

- ``{"snapshot": {...}, "missed_events": n}``: ``time`` (RFC 3339), ``cluster_wide``,
  ``replica_id``, ``models`` (each a ``ModelCounters``: ``model``, ``success``,
  ``fallback``, ``error``, ``latency_p50_ms``, ``latency_p95_ms``, token counts,
  ``circuit`` as the enum's name, ``circuit_reason``; plus ``provider`` and ``locality``,
  which the proto does not have; money: ``cost_usd``, ``cost_unknown``,
  ``cost_avoided_usd``, ``repairs``, ``repair_successes``). Every configured model has a
  row. ``chains`` (each a ``ChainCounters``: ``chain``, ``calls``, ``answered``,
  ``local``, ``cost_usd``, ``cost_unknown``, ``cost_avoided_usd``), cluster-wide when the
  models are.
- ``{"events": [...]}``: the Route events since the last such message (as the
  ``EventBatch`` of a batched WatchMetrics stream, at most one message per
  ``BATCH_SECONDS``), each a ``RouteEvent`` in proto3 JSON (``proto_json.proto_event``).
- ``{"circuit": {...}}``: a ``CircuitChange`` in proto3 JSON.

A feed starts with a snapshot and the calls of the last ``BACKLOG_SECONDS`` (at most
``BACKLOG_EVENTS``), so a page opened late is not empty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

from llm_router_server.breaker.rules import Circuit, State, Transition
from llm_router_server.metrics.bus import MetricsBus
from llm_router_server.metrics.counters import ChainStats, ModelStats
from llm_router_server.metrics.proto_json import circuit_change, circuit_state, proto_event, rfc3339
from llm_router_server.providers.identity import ModelIdentity

BACKLOG_SECONDS = 300
BACKLOG_EVENTS = 50
BATCH_SECONDS = 0.25
"""Seconds between two messages of events (the feed takes events in batches)."""
BATCH_EVENTS = 1000
"""Most events in one message."""
SNAPSHOT_SECONDS = 1.0
"""Seconds between snapshots while events flow (and at most this long without one)."""


class LiveFeed:
    """Builds the live page's messages (see the module's docstring)."""

    def __init__(
        self,
        bus: MetricsBus,
        *,
        models: Mapping[str, ModelIdentity],
        local_stats: Callable[[], Mapping[str, ModelStats]],
        circuits: Callable[[], Awaitable[Mapping[str, Circuit]]],
        local_chain_stats: Callable[[], Mapping[str, ChainStats]] = dict,
        queue: int = 1000,
        interval: float = SNAPSHOT_SECONDS,
    ) -> None:
        self.bus = bus
        self.models = dict(models)
        """Every configured model (from every chain) by model string."""
        self.local_stats = local_stats
        self.circuits = circuits
        self.local_chain_stats = local_chain_stats
        self.queue = queue
        self.interval = interval

    async def snapshot(self) -> dict[str, Any]:
        shared = await self.bus.cluster_stats()
        stats = shared if shared is not None else self.local_stats()
        circuits = await self.circuits()
        rows = []
        for model in sorted(set(self.models) | set(stats)):
            row: dict[str, Any] = {"model": model, **asdict(stats.get(model, ModelStats()))}
            circuit = circuits.get(model)
            row["circuit"] = circuit_state(circuit.state if circuit is not None else None)
            closed = circuit is None or circuit.state is State.CLOSED
            row["circuit_reason"] = "" if closed else circuit.reason  # type: ignore[union-attr]
            who = self.models.get(model)
            row["provider"] = who.provider if who is not None else ""
            row["locality"] = who.locality if who is not None else ""
            rows.append(row)
        chains = await self.bus.cluster_chain_stats() if shared is not None else None
        if chains is None:
            chains = self.local_chain_stats()
        return {
            "time": rfc3339(time.time()),
            "cluster_wide": shared is not None,
            "replica_id": self.bus.replica_id,
            "models": rows,
            "chains": [{"chain": name, **asdict(s)} for name, s in sorted(chains.items())],
        }

    async def messages(self) -> AsyncGenerator[dict[str, Any], None]:
        """The feed: a snapshot, recent calls, then events and circuit changes as they
        happen with a fresh snapshot at most ``interval`` apart. Runs until closed."""
        subscription = self.bus.subscribe(self.queue, batched=True)
        loop = asyncio.get_running_loop()
        try:
            yield {"snapshot": await self.snapshot(), "missed_events": 0}
            since = f"{int((time.time() - BACKLOG_SECONDS) * 1000)}-0"
            backlog = list(await self.bus.replay(since) or ())[-BACKLOG_EVENTS:]
            seen = {e.event_id for e in backlog}
            if backlog:
                yield {"events": [proto_event(old) for old in backlog]}
            next_snapshot = loop.time() + self.interval
            while True:
                try:
                    async with asyncio.timeout_at(next_snapshot):
                        notice = await subscription.get_batch(BATCH_EVENTS, BATCH_SECONDS)
                except TimeoutError:
                    missed = subscription.take_missed()
                    yield {"snapshot": await self.snapshot(), "missed_events": missed}
                    next_snapshot = loop.time() + self.interval
                    continue
                if isinstance(notice, Transition):
                    yield {"circuit": circuit_change(notice, self.bus.replica_id)}
                    continue
                fresh = [e for e in notice if e.event_id not in seen]  # not sent in the backlog
                seen.clear()
                if fresh:
                    yield {"events": [proto_event(e) for e in fresh]}
        finally:
            self.bus.unsubscribe(subscription)
