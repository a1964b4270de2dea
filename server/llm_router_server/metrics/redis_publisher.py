"""``RedisPublisher``: a bounded buffer of events and the background task that sends them.

``offer`` only appends to the buffer (no I/O, no waiting, no raising); ``run`` drains it
in batches of up to ``BATCH`` events, one round trip per batch: one ``EVALSHA`` of a
script that Redis holds (loaded once with ``SCRIPT LOAD``), with the batch's events and
its counters already summed. When Redis is down or does not answer, the buffer holds
events; what does not fit is counted in ``dropped``. The task retries with backoff, so
publishing resumes by itself when Redis is back.

Each batch is applied once. A batch whose reply does not come (Redis frozen, the
connection cut after the script ran) is sent again as it was, under the same sequence
number; the script keeps, per publisher, the number of the last batch it applied and
skips a batch it has applied already. A publisher sends one batch at a time, in order,
so one number per publisher is enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence

from llm_router_server.metrics.redis_codec import (
    APPLIED_KEY_PREFIX,
    BATCH_CHANNEL,
    CHAINS_KEY,
    CHANNEL_HEAD,
    COUNTS_KEY,
    LATENCY_KEY,
    METRICS_CHANNEL,
    STREAM_KEY,
    event_json,
    increments,
)
from llm_router_server.redis_connection import REDIS_ERRORS, Backoff, RedisConnection, Script
from llm_router_server.types import RouteEvent

logger = logging.getLogger(__name__)

# One batch in one round of Lua. KEYS: the stream, the seed's channel, the counts hash,
# the latency hash, this publisher's applied key, the replicas' batch channel, the chains
# hash. ARGV: the batch's sequence number, how long the applied key lives (s), the stream's
# MAXLEN, the channel message's head (CHANNEL_HEAD), the number of events, their JSON, the
# number of (field, n) pairs for the counts hash, the number for the latency hash, then
# those pairs in that order, then the pairs for the chains hash. Per event: XADD to the
# capped stream and PUBLISH the payload with the new entry's id put first (the head, the
# id, the closing quote and comma, then the JSON without its opening brace); then one
# PUBLISH of all those messages to the batch channel, and HINCRBY the summed counters.
# Returns the number of events applied: 0 for a batch applied before.
_PUBLISH_BATCH = Script("""
local seq = tonumber(ARGV[1])
local done = tonumber(redis.call('GET', KEYS[5]) or '-1')
if done >= seq then return 0 end
redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[2])
local n = tonumber(ARGV[5])
local messages = {}
for i = 6, 5 + n do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[i])
  local message = ARGV[4] .. id .. '",' .. string.sub(ARGV[i], 2)
  redis.call('PUBLISH', KEYS[2], message)
  messages[#messages + 1] = message
end
redis.call('PUBLISH', KEYS[6], table.concat(messages, '\\n'))
local pairs_at = 8 + n
local counts_end = pairs_at - 1 + 2 * tonumber(ARGV[6 + n])
local latency_end = counts_end + 2 * tonumber(ARGV[7 + n])
for i = pairs_at, counts_end, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end
for i = counts_end + 1, latency_end, 2 do redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1]) end
for i = latency_end + 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[7], ARGV[i], ARGV[i + 1]) end
return n
""")

BATCH = 256
"""Most events sent in one script call."""
LINGER_SECONDS = 0.01
"""How long the sender waits before each batch (unless it is full) for more events to join
it: at most one round trip per 10 ms however busy the server, for that much delay."""
APPLIED_TTL_SECONDS = 86400
"""How long Redis remembers a publisher's last applied batch after its last batch: longer
than any wait before a batch is sent again."""


class RedisPublisher:
    """Sends events to the stream, the channels and the counter hashes, never in the way
    of the caller."""

    def __init__(
        self, redis: RedisConnection, *, replica_id: str, buffer_size: int, stream_maxlen: int
    ) -> None:
        self.redis = redis
        self.replica_id = replica_id
        self.buffer_size = buffer_size
        self.stream_maxlen = stream_maxlen
        self.publisher_id = uuid.uuid4().hex
        """Names this publisher's applied key; new for each process."""
        self.sent = 0
        self.dropped = 0
        self.duplicates = 0
        """Batches Redis had applied already when they were sent again."""
        self.batches = 0
        self.cpu_seconds = 0.0
        """CPU time this task spent encoding batches and handing them to the client (the
        process's time while it ran; awaiting the reply not included)."""
        self.connected = False
        self._buffer: deque[RouteEvent] = deque()
        self._sending = 0
        self._seq = 0
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
        if not self._wake.is_set():
            self._idle.clear()
            self._wake.set()

    async def run(self) -> None:
        """Send buffered events in batches; a batch that fails is sent again, unchanged,
        after a backoff, before any other."""
        backoff = Backoff()
        while True:
            if not self._buffer:
                self._wake.clear()
                self._idle.set()
                await self._wake.wait()
                continue
            self._idle.clear()
            if len(self._buffer) < BATCH:
                await asyncio.sleep(LINGER_SECONDS)  # let more events join this batch
            batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), BATCH))]
            self._sending = len(batch)
            self._seq += 1
            args = self._encode(batch)
            while True:
                try:
                    await self._send(args)
                    break
                except REDIS_ERRORS as exc:
                    self._set_connected(False, exc)
                    await backoff.wait()
            self.sent += len(batch)
            self.batches += 1
            self._sending = 0
            self._set_connected(True)
            backoff.reset()

    async def flush(self) -> None:
        """Give buffered events a short chance to go out, if Redis is reachable."""
        if self.connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.redis.timeout, 1.0)):
                    await self._idle.wait()

    def _encode(self, batch: Sequence[RouteEvent]) -> list[str | int]:
        started = time.process_time()
        counts, latency, chains = increments(batch)
        args: list[str | int] = [self._seq, APPLIED_TTL_SECONDS, self.stream_maxlen, CHANNEL_HEAD]
        args.append(len(batch))
        args += [event_json(event, self.replica_id) for event in batch]
        args += (len(counts), len(latency))
        for field, n in (*counts.items(), *latency.items(), *chains.items()):
            args += (field, n)
        self.cpu_seconds += time.process_time() - started
        return args

    async def _send(self, args: Sequence[str | int]) -> None:
        keys = (
            STREAM_KEY,
            METRICS_CHANNEL,
            COUNTS_KEY,
            LATENCY_KEY,
            APPLIED_KEY_PREFIX + self.publisher_id,
            BATCH_CHANNEL,
            CHAINS_KEY,
        )
        applied = await self.redis.run_script(_PUBLISH_BATCH, keys, args)
        if applied == 0:
            self.duplicates += 1

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
