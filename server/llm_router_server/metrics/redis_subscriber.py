"""``RedisSubscriber``: one pub/sub subscription per process that feeds every local watcher.

It listens to the replicas' batch channel (``BATCH_CHANNEL``: one message per published
batch, not per event), and only while some watcher is subscribed here: a replica nobody
watches reads nothing. After each (re)connect it catches up from the stream, so a watcher
misses nothing that was published while the subscription was down (or since it came, for
the first watcher); pub/sub and catch-up reads overlap, so each event is handed over once,
by its stream id. When the last watcher has gone, only the id of a batch's last event is
noted until the subscription closes (within a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from llm_router_server.metrics.bus import parse_event_id
from llm_router_server.metrics.redis_codec import (
    BATCH_CHANNEL,
    channel_event_id,
    event_from_payload,
)
from llm_router_server.metrics.redis_reader import RedisReader
from llm_router_server.metrics.watchers import LocalWatchers
from llm_router_server.redis_connection import REDIS_ERRORS, Backoff
from llm_router_server.types import RouteEvent

logger = logging.getLogger(__name__)


class RedisSubscriber:
    """Listens to the channel and hands every replica's events to ``watchers``."""

    def __init__(self, reader: RedisReader, watchers: LocalWatchers) -> None:
        self.reader = reader
        self.watchers = watchers
        self._last_seen = (int(time.time() * 1000), 0)

    async def run(self) -> None:
        """Listen until cancelled; on a lost connection wait, reconnect and catch up."""
        backoff = Backoff()
        task = asyncio.current_task()
        while True:
            if not self.watchers.watched:
                await self.watchers.watched_now.wait()
                # Catch up from when the first watcher came, not from before.
                self._last_seen = max(self._last_seen, (int(time.time() * 1000) - 1, 0))
            pubsub = self.reader.redis.client.pubsub()
            try:
                await pubsub.subscribe(BATCH_CHANNEL)
                after = "{}-{}".format(*self._last_seen)
                for event in await self.reader.range_after(after):
                    self._deliver(event)
                backoff.reset()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if task is not None and task.cancelling():
                        # redis-py's read timeout can swallow a cancellation that lands
                        # as it expires (and return None): stop as asked all the same.
                        raise asyncio.CancelledError
                    if message is not None:
                        self._on_message(message["data"])
                    elif not self.watchers.watched:
                        break  # a quiet second with nobody watching: stop listening
            except REDIS_ERRORS as exc:
                logger.debug("metrics subscription lost: %s", exc)
                await backoff.wait()
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_message(self, data: Any) -> None:
        if not isinstance(data, str):
            return
        if not self.watchers.watched:
            event_id = channel_event_id(data[data.rfind("\n") + 1 :])
            if event_id is not None:
                with contextlib.suppress(ValueError):
                    self._last_seen = max(self._last_seen, parse_event_id(event_id))
            return
        for line in data.split("\n"):
            try:
                event = event_from_payload(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                logger.debug(
                    "ignoring a message on %s that is not an event: %s", BATCH_CHANNEL, exc
                )
                continue
            self._deliver(event)

    def _deliver(self, event: RouteEvent) -> None:
        """Hand an event to the local watchers unless it was handed over already."""
        if event.event_id:
            try:
                key = parse_event_id(event.event_id)
            except ValueError:
                return
            if key <= self._last_seen:
                return
            self._last_seen = key
        self.watchers.deliver(event)
