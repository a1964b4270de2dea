"""Watcher plumbing: this process's observers and watchers, shared by both buses.

``LocalWatchers`` is the part of a bus that serves this process: local observers (called
inside ``publish``), one ``Subscription`` per watcher, and this replica's circuit changes.
Both buses build on it; what differs between them is where published events go and where
the events their watchers see come from.

Events for watchers go into one shared ring, and what is sent to them is paid from one
budget (both in ``watch_schedule.py``). A watcher that falls more than its ``maxsize``
events behind loses the oldest and is told how many (``missed``); one that the budget
held back skips to the newest event and is told how many it skipped. Watchers that take
events in batches (``get_batch``) share a smaller budget of their own, where a message
carries every event the watcher has not seen (up to its batch size). Circuit changes are
rare and never skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from llm_router_server.breaker.rules import Transition
from llm_router_server.metrics.bus import BusStats, EventFilter, Notice
from llm_router_server.metrics.watch_schedule import (
    BATCH_EVENT_COST,
    BATCH_MESSAGES_PER_EVENT,
    BATCH_MESSAGES_PER_SECOND,
    LIMITED_BATCH,
    WatchRing,
    WatchScheduler,
)
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
    """One watcher's place in the ring, its filter, its circuit changes and what it missed."""

    def __init__(self, scheduler: WatchScheduler, maxsize: int, accept: EventFilter | None) -> None:
        self._scheduler = scheduler
        self._ring = scheduler.ring
        self.maxsize = maxsize
        self.accept = accept
        self.cursor = self._ring.next_seq
        """The number of the next event this watcher looks at."""
        self.waiter: asyncio.Future[bool | None] | None = None
        """What it waits on for its turn, while it waits."""
        self.missed = 0
        self._reported = 0
        self._changes: deque[Transition] = deque(maxlen=maxsize)
        self._not_before = 0.0

    def offer_change(self, change: Transition) -> None:
        """Queue a circuit change (not filtered: the watcher filters by model itself)."""
        if len(self._changes) == self._changes.maxlen:
            self.missed += 1
        self._changes.append(change)
        self._scheduler.wake(self)

    def take_missed(self) -> int:
        """Events missed since the last call (to report them to the watcher once)."""
        new = self.missed - self._reported
        self._reported = self.missed
        return new

    @property
    def missed_so_far(self) -> int:
        """``missed``, plus the events it is too far behind for now (counted when it next
        reads; for a filtered watcher, at most that many)."""
        return self.missed + max(0, self._ring.next_seq - self.cursor - self.maxsize)

    def qsize(self) -> int:
        """Events and changes waiting for this watcher (whatever its filter)."""
        return len(self._changes) + self._ring.next_seq - max(self.cursor, self._ring.first_seq)

    def get_nowait(self) -> Notice:
        """The next notice without waiting for one or for the budget; IndexError when none."""
        if self._changes:
            return self._changes.popleft()
        event = self._next_match()
        if event is None:
            raise IndexError("no event waiting")
        self.cursor += 1
        return event

    async def get_batch(
        self, max_events: int, interval: float = 0.0, cost: float = BATCH_EVENT_COST
    ) -> list[RouteEvent] | Transition:
        """The next circuit change, or up to ``max_events`` matching events (oldest first),
        in turn with the other watchers and not sooner than ``interval`` seconds after the
        last batch (a circuit change waits for that too). Each event costs ``cost`` of a
        message from the budget. One held back by the budget gets the newest events, at
        most ``LIMITED_BATCH``, and is told of the others."""
        loop = asyncio.get_running_loop()
        while True:
            if self._changes:
                return self._changes.popleft()
            wait = self._not_before - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            limited = await self._scheduler.turn(self)
            if self._changes:
                return self._changes.popleft()
            most = min(max_events, LIMITED_BATCH) if limited else max_events
            if limited:  # held back: the newest few
                self._skip(self._ring.next_seq - most)
            events: list[RouteEvent] = []
            while len(events) < most and (event := self._next_match()) is not None:
                events.append(event)
                self.cursor += 1
            if not events:  # none passed the filter
                self._scheduler.refund()
                continue
            self._scheduler.spend(len(events) * cost)
            self._not_before = loop.time() + interval
            return events

    async def get(self) -> Notice:
        """The next circuit change or matching event, in turn with the other watchers."""
        while True:
            if self._changes:
                return self._changes.popleft()
            limited = await self._scheduler.turn(self)
            if self._changes:
                return self._changes.popleft()
            if limited:
                self._skip(self._ring.next_seq - 1)  # held back: show the newest
            event = self._next_match()
            if event is None:  # none passed the filter
                self._scheduler.refund()
                continue
            self.cursor += 1
            return event

    def _next_match(self) -> RouteEvent | None:
        """Move the cursor to the next event that passes the filter; None when none yet."""
        ring = self._ring
        self._skip(max(ring.first_seq, ring.next_seq - self.maxsize))
        while self.cursor < ring.next_seq:
            event = ring.at(self.cursor)
            if self.accept is None or self.accept(event):
                return event
            self.cursor += 1
        return None

    def _skip(self, to: int) -> None:
        """Move the cursor up to ``to``, counting the matching events passed over as missed."""
        ring = self._ring
        if to <= self.cursor:
            return
        held = max(self.cursor, ring.first_seq)
        self.missed += held - self.cursor  # fell out of the ring: filter unknown, count all
        if self.accept is None:
            self.missed += to - held
        else:
            self.missed += sum(1 for seq in range(held, to) if self.accept(ring.at(seq)))
        self.cursor = to

    def __aiter__(self) -> AsyncIterator[Notice]:
        return self

    async def __anext__(self) -> Notice:
        return await self.get()


class LocalWatchers:
    """This process's observers and watchers (the ``observe``, ``subscribe``,
    ``unsubscribe`` and ``notice`` of both buses)."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._observers: list[Callable[[RouteEvent], None]] = []
        self._closed_missed = 0
        self._ring = WatchRing()
        self._scheduler = WatchScheduler(self._ring)
        self._batch_scheduler = WatchScheduler(
            self._ring, BATCH_MESSAGES_PER_EVENT, BATCH_MESSAGES_PER_SECOND
        )
        self.watched_now = asyncio.Event()
        """Set while some watcher is subscribed (the Redis subscriber listens only then)."""

    # -- the seam's methods ------------------------------------------------------------

    def observe(self, callback: Callable[[RouteEvent], None]) -> None:
        self._observers.append(callback)

    def subscribe(
        self, maxsize: int = 1000, accept: EventFilter | None = None, *, batched: bool = False
    ) -> Subscription:
        self._ring.grow(2 * maxsize)  # room to count what a watcher skips by its filter
        scheduler = self._batch_scheduler if batched else self._scheduler
        subscription = Subscription(scheduler, maxsize, accept)
        self._subscriptions.add(subscription)
        self.watched_now.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._closed_missed += subscription.missed_so_far
            if not self._subscriptions:
                self.watched_now.clear()
                self._ring.clear()  # nobody reads them: hold no memory

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
        """Hand an event to every watcher of this process: one append, whatever their number."""
        if self._subscriptions:
            self._ring.append(event)
            self._scheduler.event_added()
            self._batch_scheduler.event_added()

    @property
    def observed(self) -> bool:
        """Some local observer is registered."""
        return bool(self._observers)

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
            watcher_missed=self._closed_missed + sum(s.missed_so_far for s in self._subscriptions),
            connected=connected,
        )

    def close_watchers(self) -> None:
        for subscription in tuple(self._subscriptions):
            self.unsubscribe(subscription)
