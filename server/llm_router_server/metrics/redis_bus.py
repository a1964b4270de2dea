"""Route events through Redis: shared by every replica, never in the way of a Route call.

``RedisMetricsBus`` implements the seam by composing three parts over one
``RedisConnection`` (``redis_connection.py``):

- ``RedisPublisher`` (``redis_publisher.py``): ``publish`` only appends to its bounded
  buffer; a background task runs one Lua script per event (one pipeline per batch) that
  does ``XADD llm_router_metrics:events MAXLEN ~ N * event <json>``, ``PUBLISH
  llm_router_metrics <json with event_id>`` (the channel keeps the seed's payload; the
  stream holds recent events for watchers that resume; the id is the stream entry's id)
  and ``HINCRBY`` on ``llm_router_metrics:counts`` (``"<model>|success"``, fallback,
  error, tokens, cost, repairs), ``llm_router_metrics:latency`` (``"<model>|<bucket>"``)
  and ``llm_router_metrics:chains`` (``"<chain>|calls"``, answered, local, cost): the
  cluster-wide counters of ``WatchMetrics`` snapshots.
- ``RedisSubscriber`` (``redis_subscriber.py``): one pub/sub connection per process feeds
  every local watcher, catching up from the stream after a reconnect.
- ``RedisReader`` (``redis_reader.py``): ``replay``, ``cluster_stats`` and
  ``cluster_chain_stats``.

What is written where is in ``redis_codec.py``. Redis errors never leave these modules:
their callers catch ``REDIS_ERRORS`` and treat them as "Redis unreachable right now".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from llm_router_server.metrics.bus import BusStats
from llm_router_server.metrics.counters import ChainStats, ModelStats
from llm_router_server.metrics.redis_publisher import RedisPublisher
from llm_router_server.metrics.redis_reader import RedisReader
from llm_router_server.metrics.redis_subscriber import RedisSubscriber
from llm_router_server.metrics.watchers import LocalWatchers
from llm_router_server.redis_connection import RedisConnection
from llm_router_server.types import RouteEvent

logger = logging.getLogger(__name__)


class RedisMetricsBus(LocalWatchers):
    """Events and counters in Redis, shared by the replicas that use the same Redis."""

    def __init__(
        self,
        url: str,
        *,
        replica_id: str,
        buffer_size: int = 10000,
        stream_maxlen: int = 10000,
        timeout: float = 2.0,
    ) -> None:
        super().__init__()
        self.replica_id = replica_id
        self.redis = RedisConnection(url, timeout)
        self.published = 0
        self.publisher = RedisPublisher(
            self.redis, replica_id=replica_id, buffer_size=buffer_size, stream_maxlen=stream_maxlen
        )
        self.reader = RedisReader(self.redis)
        self.subscriber = RedisSubscriber(self.reader, self)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def sent(self) -> int:
        """Events written to Redis by this process."""
        return self.publisher.sent

    @property
    def dropped(self) -> int:
        """Events lost because the publish buffer was full."""
        return self.publisher.dropped

    # -- the request path: no I/O, no waiting, no raising ----------------------------

    def publish(self, event: RouteEvent) -> None:
        self.published += 1
        if self.observed:
            self.notify_observers(replace(event, replica_id=self.replica_id))
        self.publisher.offer(event)  # it writes this replica's id into what it sends

    def stats(self) -> BusStats:
        return self.bus_stats(
            published=self.published,
            dropped=self.publisher.dropped,
            buffered=self.publisher.buffered,
            connected=self.publisher.connected,
        )

    # -- background work and reads -----------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.publisher.run(), name="metrics-redis-publisher"),
            asyncio.create_task(self.subscriber.run(), name="metrics-redis-subscriber"),
        ]

    async def replay(self, after_id: str) -> Sequence[RouteEvent] | None:
        return await self.reader.replay(after_id)

    async def cluster_stats(self) -> Mapping[str, ModelStats] | None:
        return await self.reader.cluster_stats()

    async def cluster_chain_stats(self) -> Mapping[str, ChainStats] | None:
        return await self.reader.cluster_chain_stats()

    async def aclose(self) -> None:
        """Give buffered events a short chance to go out, then stop and disconnect."""
        if self._tasks:
            await self.publisher.flush()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.close_watchers()
        await self.redis.aclose()
        if self.publisher.unsent or self.publisher.dropped:
            logger.info(
                "metrics: closed with %d event(s) unsent and %d dropped",
                self.publisher.unsent,
                self.publisher.dropped,
            )
