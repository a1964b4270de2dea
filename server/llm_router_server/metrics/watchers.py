"""Watcher plumbing: this process's observers and watchers, shared by both buses.

``LocalWatchers`` is the part of a bus that serves this process: local observers (called
inside ``publish``), one ``Subscription`` per watcher, and this replica's circuit changes.
Both buses build on it; what differs between them is where published events go and where
the events their watchers see come from.

Events for watchers go into one shared ring (``WatchRing``), not into a queue per
watcher: handing an event over is one append whatever the number of watchers, and each
watcher reads the ring at its own place. A watcher that falls more than its ``maxsize``
events behind loses the oldest and is told how many (``missed``). Sending to watchers is
paid from one budget (``WatchBudget``): ``MESSAGES_PER_EVENT`` messages per event plus
``MESSAGES_PER_SECOND``, shared by all watchers in turn, so that however many watchers are
open, what they cost the server stays in proportion to its Route calls. One watcher (or a
few) gets every event; when many share the budget, a watcher that had to wait for its
turn skips to the newest event and is told how many it skipped. Circuit changes are rare
and never skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from llm_router_server.breaker.breaker import Transition
from llm_router_server.metrics.bus import BusStats, EventFilter, Notice
from llm_router_server.types import RouteEvent

logger = logging.getLogger(__name__)

MESSAGES_PER_EVENT = 2.0
"""Watcher messages the budget gains per event handed to watchers."""
MESSAGES_PER_SECOND = 500.0
"""Watcher messages the budget gains per second, busy or not."""
BURST = 1000.0
"""Most messages the budget saves up from ``MESSAGES_PER_SECOND`` in a quiet spell."""


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


class WatchBudget:
    """Tokens for watcher messages, handed out first come, first served."""

    def __init__(
        self,
        per_event: float = MESSAGES_PER_EVENT,
        per_second: float = MESSAGES_PER_SECOND,
        burst: float = BURST,
    ) -> None:
        self.per_event, self.per_second, self.burst = per_event, per_second, burst
        self.tokens = burst
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._refilled_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def event_added(self) -> None:
        self._add(self.per_event)

    async def take(self) -> bool:
        """Take one token, waiting in line when there is none; True when it had to wait."""
        self._refill()
        if not self._waiters and self.tokens >= 1:
            self.tokens -= 1
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._schedule()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._add(1)  # granted as it was cancelled: give the token back
            else:
                self._waiters.remove(waiter)
            raise
        return True

    def _refill(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._refilled_at is not None and self.tokens < self.burst:
            gained = (now - self._refilled_at) * self.per_second
            self.tokens = min(self.burst, self.tokens + gained)
        self._refilled_at = now

    def _add(self, n: float) -> None:
        # Earned by events: capped well above ``burst``, so that a burst of events is not
        # lost to a watcher that reads it a little later, nor saved up without end.
        self.tokens = min(self.tokens + n, 10 * self.burst)
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.tokens >= 1:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.tokens -= 1
                waiter.set_result(None)

    def _schedule(self) -> None:
        if self._timer is None and self._waiters:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.01, 1 / self.per_second), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._refill()
        self._grant()
        self._schedule()


class WatchRing:
    """The last ``capacity`` events for watchers, numbered; one append per event."""

    def __init__(self, capacity: int = 1000) -> None:
        self.events: deque[RouteEvent] = deque(maxlen=capacity)
        self.next_seq = 0
        """The number the next event gets."""
        self._arrived: asyncio.Future[None] | None = None

    @property
    def first_seq(self) -> int:
        """The number of the oldest event held."""
        return self.next_seq - len(self.events)

    def grow(self, capacity: int) -> None:
        maxlen = self.events.maxlen or 0
        if capacity > maxlen:
            self.events = deque(self.events, maxlen=capacity)

    def append(self, event: RouteEvent) -> None:
        self.events.append(event)
        self.next_seq += 1
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    def at(self, seq: int) -> RouteEvent:
        return self.events[seq - self.first_seq]

    async def arrival(self) -> None:
        """Wait for the next event (every waiting watcher wakes from one future)."""
        if self._arrived is None or self._arrived.done():
            self._arrived = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._arrived)


class Subscription:
    """One watcher's place in the ring, its filter, its circuit changes and what it missed."""

    def __init__(
        self, ring: WatchRing, budget: WatchBudget, maxsize: int, accept: EventFilter | None
    ) -> None:
        self._ring = ring
        self._budget = budget
        self.maxsize = maxsize
        self.accept = accept
        self.cursor = ring.next_seq
        """The number of the next event this watcher looks at."""
        self.missed = 0
        self._reported = 0
        self._changes: deque[Transition] = deque(maxlen=maxsize)

    def offer_change(self, change: Transition) -> None:
        """Queue a circuit change (not filtered: the watcher filters by model itself)."""
        if len(self._changes) == self._changes.maxlen:
            self.missed += 1
        self._changes.append(change)

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

    async def get(self) -> Notice:
        """The next circuit change or matching event, in turn with the other watchers."""
        while True:
            if self._changes:
                return self._changes.popleft()
            if self._next_match() is None:
                await self._ring.arrival()
                continue
            waited = await self._budget.take()
            if waited:
                self._skip(self._ring.next_seq - 1)  # had to wait: show the newest
            event = self._next_match()
            if event is None:  # what matched fell out of the ring while waiting
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
        self._budget = WatchBudget()
        self.watched_now = asyncio.Event()
        """Set while some watcher is subscribed (the Redis subscriber listens only then)."""

    # -- the seam's methods ------------------------------------------------------------

    def observe(self, callback: Callable[[RouteEvent], None]) -> None:
        self._observers.append(callback)

    def subscribe(self, maxsize: int = 1000, accept: EventFilter | None = None) -> Subscription:
        self._ring.grow(2 * maxsize)  # room to count what a watcher skips by its filter
        subscription = Subscription(self._ring, self._budget, maxsize, accept)
        self._subscriptions.add(subscription)
        self.watched_now.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._closed_missed += subscription.missed_so_far
            if not self._subscriptions:
                self.watched_now.clear()
                self._ring.events.clear()  # nobody reads them: hold no memory

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
            self._budget.event_added()

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
