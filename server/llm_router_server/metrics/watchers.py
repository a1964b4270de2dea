"""Watcher plumbing: this process's observers and watcher queues, shared by both buses.

``LocalWatchers`` is the part of a bus that serves this process: local observers (called
inside ``publish``), one ``Subscription`` per watcher, and this replica's circuit changes.
Both buses build on it; what differs between them is where published events go and where
the events their watchers see come from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable

from llm_router_server.breaker.rules import Transition
from llm_router_server.metrics.bus import BusStats, EventFilter, Notice
from llm_router_server.types import RouteEvent

logger = logging.getLogger(__name__)


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


class Subscription:
    """One watcher's bounded queue of events. ``missed`` counts what overflowed."""

    def __init__(self, maxsize: int, accept: EventFilter | None = None) -> None:
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize)
        self.accept = accept
        self.missed = 0
        self._reported = 0

    def offer(self, event: RouteEvent) -> None:
        """Queue an event if it passes the filter; count it as missed if the queue is full."""
        if self.accept is None or self.accept(event):
            self._put(event)

    def offer_change(self, change: Transition) -> None:
        """Queue a circuit change (not filtered: the watcher filters by model itself)."""
        self._put(change)

    def _put(self, notice: Notice) -> None:
        try:
            self._queue.put_nowait(notice)
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


class LocalWatchers:
    """This process's observers and watchers (the ``observe``, ``subscribe``,
    ``unsubscribe`` and ``notice`` of both buses)."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._observers: list[Callable[[RouteEvent], None]] = []
        self._closed_missed = 0

    # -- the seam's methods ------------------------------------------------------------

    def observe(self, callback: Callable[[RouteEvent], None]) -> None:
        self._observers.append(callback)

    def subscribe(self, maxsize: int = 1000, accept: EventFilter | None = None) -> Subscription:
        subscription = Subscription(maxsize, accept)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._closed_missed += subscription.missed

    def notice(self, change: Transition) -> None:
        # Local watchers only: each replica reports the changes it made; snapshots read
        # the (possibly shared) circuit state for the whole picture.
        for subscription in tuple(self._subscriptions):
            subscription.offer_change(change)

    # -- for the buses -----------------------------------------------------------------

    def notify_observers(self, event: RouteEvent) -> None:
        """Call each local observer with an event this process published."""
        for callback in self._observers:
            try:
                callback(event)
            except Exception:
                logger.exception("metrics observer %r failed", callback)

    def deliver(self, event: RouteEvent) -> None:
        """Offer an event to every watcher of this process."""
        for subscription in tuple(self._subscriptions):
            subscription.offer(event)

    @property
    def watched(self) -> bool:
        """Some watcher is subscribed now."""
        return bool(self._subscriptions)

    def bus_stats(
        self, *, published: int, dropped: int = 0, buffered: int = 0, connected: bool = True
    ) -> BusStats:
        """The bus's ``BusStats``, with the watcher counts filled in."""
        return BusStats(
            published=published,
            dropped=dropped,
            buffered=buffered,
            watchers=len(self._subscriptions),
            watcher_missed=self._closed_missed + sum(s.missed for s in self._subscriptions),
            connected=connected,
        )

    def close_watchers(self) -> None:
        for subscription in tuple(self._subscriptions):
            self.unsubscribe(subscription)
