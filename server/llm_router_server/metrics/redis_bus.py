"""Route events through Redis: shared by every replica, never in the way of a Route call.

Every call goes through ``RedisConnection`` (``redis_connection.py``); Redis errors are
caught here as ``REDIS_ERRORS`` and treated as "Redis unreachable right now".

For each event ``RedisMetricsBus`` runs one Lua script (one pipeline per batch) that does:

- ``XADD llm_router_metrics:events MAXLEN ~ N * event <json>`` and, in the same
  Lua script, ``PUBLISH llm_router_metrics <json with event_id>``: the channel
  keeps the seed's payload; the stream holds recent events for watchers that
  resume; the id is the stream entry's id.
- ``HINCRBY llm_router_metrics:counts "<model>|success"`` (and fallback, error,
  tokens) and ``HINCRBY llm_router_metrics:latency "<model>|<bucket>"``: the
  cluster-wide counters of ``WatchMetrics`` snapshots.

``publish`` only appends to a bounded buffer; a background task drains it.
When Redis is down or does not answer, the buffer holds events; what does not
fit is counted in ``dropped``. The task retries with backoff, so publishing
resumes by itself when Redis is back. One pub/sub connection per process feeds
every local watcher; after a reconnect it catches up from the stream, so a
watcher misses nothing that was published while the subscription was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from llm_router_server.metrics.bus import (
    METRICS_CHANNEL,
    BusStats,
    LocalWatchers,
    ModelStats,
    build_stats,
    event_from_payload,
    event_json,
    increments,
    parse_event_id,
    parse_field,
)
from llm_router_server.redis_connection import REDIS_ERRORS, Backoff, RedisConnection
from llm_router_server.types import RouteEvent

logger = logging.getLogger(__name__)

STREAM_KEY = f"{METRICS_CHANNEL}:events"
COUNTS_KEY = f"{METRICS_CHANNEL}:counts"
LATENCY_KEY = f"{METRICS_CHANNEL}:latency"

# One event in one round of Lua: XADD to the capped stream, PUBLISH the payload with the
# new entry's id put first, then the counter increments: ARGV[3] pairs (field, n) for the
# counts hash, the remaining pairs for the latency hash.
_ADD_AND_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
redis.call('PUBLISH', KEYS[2], '{"event_id":"' .. id .. '",' .. string.sub(ARGV[1], 2))
local counts_end = 3 + 2 * tonumber(ARGV[3])
for i = 4, counts_end, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end
for i = counts_end + 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1]) end
return id
"""

BATCH = 256
"""Most events sent in one pipeline."""


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
        self.buffer_size = buffer_size
        self.stream_maxlen = stream_maxlen
        self.redis = RedisConnection(url, timeout)
        self.published = 0
        self.sent = 0
        self.dropped = 0
        self.connected = False
        self._buffer: deque[RouteEvent] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_seen = (int(time.time() * 1000), 0)
        self._subscribed = False
        self._sending = 0
        self._idle = asyncio.Event()

    # -- the request path: no I/O, no waiting, no raising ----------------------------

    def publish(self, event: RouteEvent) -> None:
        self.published += 1
        if event.replica_id != self.replica_id:
            event = replace(event, replica_id=self.replica_id)
        self._fanout.notify_observers(event)
        if len(self._buffer) + self._sending >= self.buffer_size:
            self.dropped += 1
            return
        self._buffer.append(event)
        self._idle.clear()
        self._wake.set()

    def stats(self) -> BusStats:
        return BusStats(
            published=self.published,
            dropped=self.dropped,
            buffered=len(self._buffer) + self._sending,
            watchers=len(self._fanout.subscriptions),
            watcher_missed=self._fanout.missed(),
            connected=self.connected,
        )

    # -- background work ---------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._drain(), name="metrics-redis-publisher"),
            asyncio.create_task(self._listen(), name="metrics-redis-subscriber"),
        ]

    async def _drain(self) -> None:
        """Send buffered events in batches; on failure put them back and retry later."""
        backoff = Backoff()
        while True:
            if not self._buffer:
                self._wake.clear()
                self._idle.set()
                await self._wake.wait()
                continue
            self._idle.clear()
            batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), BATCH))]
            self._sending = len(batch)
            try:
                await self._send(batch)
            except REDIS_ERRORS as exc:
                self._buffer.extendleft(reversed(batch))
                self._sending = 0
                self._set_connected(False, exc)
                await backoff.wait()
                continue
            self.sent += len(batch)
            self._sending = 0
            self._set_connected(True)
            backoff.reset()

    async def _send(self, batch: Sequence[RouteEvent]) -> None:
        pipe = self.redis.client.pipeline(transaction=False)
        for event in batch:
            counts, latency = increments(event)
            args: list[str | int] = [event_json(event), self.stream_maxlen, len(counts)]
            for field, n in (*counts.items(), *latency.items()):
                args += (field, n)
            pipe.eval(
                _ADD_AND_PUBLISH, 4, STREAM_KEY, METRICS_CHANNEL, COUNTS_KEY, LATENCY_KEY, *args
            )
        await pipe.execute()

    async def _listen(self) -> None:
        """One subscription to the channel for every local watcher; catch up from the
        stream after each (re)connect so that nothing published meanwhile is missed."""
        backoff = Backoff()
        while True:
            pubsub = self.redis.client.pubsub()
            try:
                await pubsub.subscribe(METRICS_CHANNEL)
                after = "{}-{}".format(*self._last_seen)
                for event in await self._range_after(after):
                    self._deliver(event)
                self._subscribed = True
                backoff.reset()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        self._deliver_raw(message["data"])
            except REDIS_ERRORS as exc:
                self._subscribed = False
                logger.debug("metrics subscription lost: %s", exc)
                await backoff.wait()
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _deliver_raw(self, data: Any) -> None:
        if not self._fanout.subscriptions and isinstance(data, str):
            # Nobody watches here: only note the id (the script puts it first).
            head = data[: data.find(",")]
            with contextlib.suppress(ValueError):
                self._last_seen = max(self._last_seen, parse_event_id(head[13:-1]))
            return
        try:
            payload = json.loads(data)
            event = event_from_payload(payload)
        except (ValueError, KeyError, TypeError) as exc:
            logger.debug("ignoring a message on %s that is not an event: %s", METRICS_CHANNEL, exc)
            return
        self._deliver(event)

    def _deliver(self, event: RouteEvent) -> None:
        """Hand an event to the local watchers once (by stream id: pub/sub and catch-up
        reads overlap)."""
        if event.event_id:
            try:
                key = parse_event_id(event.event_id)
            except ValueError:
                return
            if key <= self._last_seen:
                return
            self._last_seen = key
        self._fanout.deliver(event)

    def _set_connected(self, up: bool, exc: BaseException | None = None) -> None:
        if up and not self.connected:
            logger.info("metrics: Redis reachable at %s; publishing", self.redis.safe_url)
        elif not up and self.connected:
            logger.warning(
                "metrics: Redis unreachable (%s); buffering up to %d events",
                exc or "?",
                self.buffer_size,
            )
        self.connected = up

    # -- reads for watchers ------------------------------------------------------------

    async def _range_after(self, after_id: str) -> list[RouteEvent]:
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
        parse_event_id(after_id)
        try:
            async with asyncio.timeout(self.redis.timeout):
                return await self._range_after(after_id)
        except REDIS_ERRORS as exc:
            logger.warning("metrics: cannot read the event stream to resume: %s", exc)
            return None

    async def cluster_stats(self) -> Mapping[str, ModelStats] | None:
        try:
            async with asyncio.timeout(min(self.redis.timeout, 1.0)):
                pipe = self.redis.client.pipeline(transaction=False)
                pipe.hgetall(COUNTS_KEY)
                pipe.hgetall(LATENCY_KEY)
                raw_counts, raw_latency = await pipe.execute()
        except REDIS_ERRORS as exc:
            logger.debug("metrics: cluster counters unavailable: %s", exc)
            return None
        counts: dict[str, dict[str, int]] = {}
        for field, value in raw_counts.items():
            model, kind = parse_field(field)
            counts.setdefault(model, {})[kind] = int(value)
        latency: dict[str, dict[int, int]] = {}
        for field, value in raw_latency.items():
            model, bucket = parse_field(field)
            if bucket.isdigit():
                latency.setdefault(model, {})[int(bucket)] = int(value)
        return build_stats(counts, latency)

    async def aclose(self) -> None:
        """Give buffered events a short chance to go out, then stop and disconnect."""
        if self.connected and self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.redis.timeout, 1.0)):
                    await self._idle.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._close_watchers()
        await self.redis.aclose()
        if self._buffer or self.dropped:
            logger.info(
                "metrics: closed with %d event(s) unsent and %d dropped",
                len(self._buffer),
                self.dropped,
            )
