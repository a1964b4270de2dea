"""``InMemoryMetricsBus``: the embedded default bus and the fake of the seam. Events go to
this process's watchers only; nothing is shared between replicas."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace

from llm_router_server.metrics.bus import BusStats, parse_event_id
from llm_router_server.metrics.counters import ChainStats, ModelStats
from llm_router_server.metrics.watchers import LocalWatchers
from llm_router_server.types import RouteEvent


class EventIds:
    """Event ids in Redis Stream form (``"<unix ms>-<seq>"``), increasing."""

    def __init__(self) -> None:
        self._last = (0, 0)

    def next(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, seq + 1)
        return f"{self._last[0]}-{self._last[1]}"


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
        self.notify_observers(event)
        self.deliver(event)

    async def replay(self, after_id: str) -> Sequence[RouteEvent] | None:
        after = parse_event_id(after_id)
        return [e for e in self._history if parse_event_id(e.event_id) > after]

    async def cluster_stats(self) -> Mapping[str, ModelStats] | None:
        return None

    async def cluster_chain_stats(self) -> Mapping[str, ChainStats] | None:
        return None

    def stats(self) -> BusStats:
        return self.bus_stats(published=self.published)

    async def aclose(self) -> None:
        self.close_watchers()
