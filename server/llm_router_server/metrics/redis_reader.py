"""``RedisReader``: what watchers read from Redis on request: the events held in the
stream after an id (to resume, or to catch up after a reconnect) and the cluster-wide
counters of snapshots."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from llm_router_server.metrics.bus import parse_event_id
from llm_router_server.metrics.counters import ChainStats, ModelStats, build_chain_stats
from llm_router_server.metrics.redis_codec import (
    CHAINS_KEY,
    COUNTS_KEY,
    LATENCY_KEY,
    STREAM_KEY,
    event_from_payload,
    fields_by_name,
    stats_from_fields,
)
from llm_router_server.redis_connection import REDIS_ERRORS, RedisConnection
from llm_router_server.types import RouteEvent

logger = logging.getLogger(__name__)


class RedisReader:
    """Reads the event stream and the counter hashes."""

    def __init__(self, redis: RedisConnection) -> None:
        self.redis = redis

    async def range_after(self, after_id: str) -> list[RouteEvent]:
        """The stream's events after ``after_id``, oldest first. Raises ``REDIS_ERRORS``."""
        # decode_responses=True: ids and fields are str.
        entries: Any = await self.redis.client.xrange(STREAM_KEY, min=f"({after_id}", max="+")
        events = []
        for entry_id, fields in entries:
            try:
                events.append(event_from_payload(json.loads(fields["event"]), entry_id))
            except (ValueError, KeyError, TypeError):
                logger.debug("skipping stream entry %s: not an event", entry_id)
        return events

    async def replay(self, after_id: str) -> Sequence[RouteEvent] | None:
        """``range_after`` for a resuming watcher: ValueError on a bad id, None when Redis
        cannot be read now."""
        parse_event_id(after_id)
        try:
            async with asyncio.timeout(self.redis.timeout):
                return await self.range_after(after_id)
        except REDIS_ERRORS as exc:
            logger.warning("metrics: cannot read the event stream to resume: %s", exc)
            return None

    async def cluster_stats(self) -> Mapping[str, ModelStats] | None:
        """The counters every replica adds to; None when Redis cannot be read now."""
        try:
            async with asyncio.timeout(min(self.redis.timeout, 1.0)):
                pipe = self.redis.client.pipeline(transaction=False)
                pipe.hgetall(COUNTS_KEY)
                pipe.hgetall(LATENCY_KEY)
                raw_counts, raw_latency = await pipe.execute()
        except REDIS_ERRORS as exc:
            logger.debug("metrics: cluster counters unavailable: %s", exc)
            return None
        return stats_from_fields(raw_counts, raw_latency)

    async def cluster_chain_stats(self) -> Mapping[str, ChainStats] | None:
        """The per-chain counters every replica adds to; None when Redis cannot be read now."""
        try:
            async with asyncio.timeout(min(self.redis.timeout, 1.0)):
                raw: Any = await self.redis.client.hgetall(CHAINS_KEY)  # str: decode_responses
        except REDIS_ERRORS as exc:
            logger.debug("metrics: cluster chain counters unavailable: %s", exc)
            return None
        return build_chain_stats(fields_by_name(raw))
