"""``RedisPublisher``: a bounded buffer of events and the background task that sends them.

``offer`` only appends to the buffer (no I/O, no waiting, no raising); ``run`` drains it
in batches of up to ``BATCH`` events, one pipeline per batch and one Lua call per event.
When Redis is down or does not answer, the buffer holds events; what does not fit is
counted in ``dropped``. The task retries with backoff, so publishing resumes by itself
when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

from llm_router_server.metrics.redis_codec import (
    CHAINS_KEY,
    CHANNEL_HEAD,
    COUNTS_KEY,
    LATENCY_KEY,
    METRICS_CHANNEL,
    STREAM_KEY,
    event_json,
    increments,
)
from llm_router_server.redis_connection import REDIS_ERRORS, Backoff, RedisConnection
from llm_router_server.types import RouteEvent

logger = logging.getLogger(__name__)

# One event in one round of Lua. ARGV: the event's JSON, the stream's MAXLEN, the channel
# message's head (CHANNEL_HEAD), the number of (field, n) pairs for the counts hash, the
# number for the latency hash, then those pairs in that order, then the (field, n) pairs for
# the chains hash. XADD to the capped stream; PUBLISH the payload with the new entry's id put
# first (the head, the id, the closing quote and comma, then the JSON without its opening
# brace); HINCRBY the counters.
_ADD_AND_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[3] .. id .. '",' .. string.sub(ARGV[1], 2))
local counts_end = 5 + 2 * tonumber(ARGV[4])
local latency_end = counts_end + 2 * tonumber(ARGV[5])
for i = 6, counts_end, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end
for i = counts_end + 1, latency_end, 2 do redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1]) end
for i = latency_end + 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[5], ARGV[i], ARGV[i + 1]) end
return id
"""

BATCH = 256
"""Most events sent in one pipeline."""


class RedisPublisher:
    """Sends events to the stream, the channel and the counter hashes, never in the way
    of the caller."""

    def __init__(self, redis: RedisConnection, *, buffer_size: int, stream_maxlen: int) -> None:
        self.redis = redis
        self.buffer_size = buffer_size
        self.stream_maxlen = stream_maxlen
        self.sent = 0
        self.dropped = 0
        self.connected = False
        self._buffer: deque[RouteEvent] = deque()
        self._sending = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()

    @property
    def buffered(self) -> int:
        """Events not sent yet (waiting, or in the batch being sent)."""
        return len(self._buffer) + self._sending

    @property
    def unsent(self) -> int:
        """Events waiting in the buffer."""
        return len(self._buffer)

    def offer(self, event: RouteEvent) -> None:
        """Buffer an event to be sent, or count it as dropped when the buffer is full."""
        if self.buffered >= self.buffer_size:
            self.dropped += 1
            return
        self._buffer.append(event)
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
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

    async def flush(self) -> None:
        """Give buffered events a short chance to go out, if Redis is reachable."""
        if self.connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.redis.timeout, 1.0)):
                    await self._idle.wait()

    async def _send(self, batch: Sequence[RouteEvent]) -> None:
        pipe = self.redis.client.pipeline(transaction=False)
        for event in batch:
            counts, latency, chains = increments(event)
            args: list[str | int] = [event_json(event), self.stream_maxlen, CHANNEL_HEAD]
            args += (len(counts), len(latency))
            for field, n in (*counts.items(), *latency.items(), *chains.items()):
                args += (field, n)
            keys = (STREAM_KEY, METRICS_CHANNEL, COUNTS_KEY, LATENCY_KEY, CHAINS_KEY)
            pipe.eval(_ADD_AND_PUBLISH, len(keys), *keys, *args)
        await pipe.execute()

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
