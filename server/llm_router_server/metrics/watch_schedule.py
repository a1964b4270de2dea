"""Who sends to watchers, and when: the shared ring of events and the send budget.

``WatchRing`` holds the last events for this process's watchers, numbered; handing an
event over is one append whatever the number of watchers, and each watcher reads the ring
at its own place (``WatchSlot.cursor``).

``WatchScheduler`` decides which watcher sends next. Watchers wait in one line; a watcher
is let go (one task wakes up, to send one message) only when it has an event it has not
seen and the budget has a token. The budget gains ``MESSAGES_PER_EVENT`` tokens per event
and ``MESSAGES_PER_SECOND`` with time (saved up to ``BURST``), so that however many
watchers are open, what sending to them costs stays in proportion to the Route calls
that make the events. A watcher alone, or a few, get every event; when many share the
budget, each takes its turn, and one let go after a shortage of tokens is told so
(``limited``): it skips to the newest event.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from llm_router_server.types import RouteEvent

MESSAGES_PER_EVENT = 1.0
"""Watcher messages the budget gains per event handed to watchers."""
MESSAGES_PER_SECOND = 100.0
"""Watcher messages the budget gains per second, busy or not."""
BURST = 200.0
"""Most tokens the budget saves up from ``MESSAGES_PER_SECOND`` in a quiet spell."""
BATCH_MESSAGES_PER_EVENT = 0.1
"""Batch messages (``Subscription.get_batch``) the batch budget gains per event: batched
watchers share a budget of their own, a tenth of the unbatched one, since one message
carries what they have not seen (issue 14: a thousand dashboards within 10 % of Route)."""
BATCH_MESSAGES_PER_SECOND = 100.0
"""Batch messages the batch budget gains per second, busy or not."""
LIMITED_BATCH = 10
"""Most events in a batch for a watcher the budget held back: the newest, so that when a
thousand watchers share the budget each gets its turn every few seconds rather than a
full batch every few minutes."""
BATCH_EVENT_COST = 0.02
"""What one event in a batch costs from the batch budget, in messages: sending a message
cost about 50 times what one more event in it did in the bench (2-3 us of server CPU per
event, and its reader parses each), so the budget pays for events too, not only messages."""
SAVED = 10_000.0
"""Most tokens events can leave unspent, so that a burst of events is not lost to a
watcher that reads it a little later, nor saved up without end."""


class WatchRing:
    """The last events for watchers, numbered; one append per event."""

    def __init__(self, capacity: int = 1000) -> None:
        self.events: deque[RouteEvent] = deque(maxlen=capacity)
        self.next_seq = 0
        """The number the next event gets."""

    @property
    def first_seq(self) -> int:
        """The number of the oldest event held."""
        return self.next_seq - len(self.events)

    def grow(self, capacity: int) -> None:
        if capacity > (self.events.maxlen or 0):
            self.events = deque(self.events, maxlen=capacity)

    def append(self, event: RouteEvent) -> None:
        self.events.append(event)
        self.next_seq += 1

    def at(self, seq: int) -> RouteEvent:
        return self.events[seq - self.first_seq]

    def clear(self) -> None:
        self.events.clear()


class WatchSlot(Protocol):
    """What the scheduler knows of a watcher: where it reads, and what it waits on."""

    cursor: int
    waiter: asyncio.Future[bool | None] | None


class WatchScheduler:
    """One line of waiting watchers and the tokens that let them send."""

    def __init__(
        self,
        ring: WatchRing,
        per_event: float = MESSAGES_PER_EVENT,
        per_second: float = MESSAGES_PER_SECOND,
        burst: float = BURST,
    ) -> None:
        self.ring = ring
        self.per_event, self.per_second, self.burst = per_event, per_second, burst
        self.tokens = burst
        self.shortages = 0
        """How often the line stopped for want of a token (a watcher let go after one
        of these was limited by the budget)."""
        self._line: deque[tuple[WatchSlot, asyncio.Future[bool | None], int]] = deque()
        self._caught_up: list[tuple[WatchSlot, asyncio.Future[bool | None], int]] = []
        self._refilled_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def turn(self, slot: WatchSlot) -> bool:
        """Wait until ``slot`` may send one message about an event it has not seen; True
        when it was held back by the budget (it should skip to the newest event). Also
        returns (False, no token taken) when ``wake`` is called for it."""
        self._refill()
        if slot.cursor < self.ring.next_seq and not self._line and self.tokens >= 1:
            self.tokens -= 1
            return False
        waiter: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        slot.waiter = waiter
        self._line.append((slot, waiter, self.shortages))
        self._grant()
        try:
            return bool(await waiter)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self.tokens += 1  # let go as it was cancelled: give the token back
            raise
        finally:
            slot.waiter = None

    def wake(self, slot: WatchSlot) -> None:
        """Let ``slot`` go now, without a token (it has a circuit change to send)."""
        if slot.waiter is not None and not slot.waiter.done():
            slot.waiter.set_result(None)

    def refund(self) -> None:
        """A token taken for nothing (no event passed the watcher's filter)."""
        self.tokens += 1
        self._grant()

    def spend(self, tokens: float) -> None:
        """Take ``tokens`` more for what a message carried (a batch's events); the budget
        may go below zero, and the line waits until it is paid back."""
        self.tokens -= tokens

    def event_added(self) -> None:
        self.tokens = min(self.tokens + self.per_event, SAVED)
        if self._caught_up:
            self._line.extend(self._caught_up)
            self._caught_up.clear()
        self._grant()

    def _grant(self) -> None:
        line, next_seq = self._line, self.ring.next_seq
        while line and self.tokens >= 1:
            slot, waiter, shortages = line.popleft()
            if waiter.done():
                continue
            if slot.cursor >= next_seq:
                self._caught_up.append((slot, waiter, shortages))
                continue
            self.tokens -= 1
            waiter.set_result(self.shortages > shortages)
        if line and self.tokens < 1:
            self.shortages += 1
            if self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(max(0.01, 1 / self.per_second), self._tick)

    def _refill(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._refilled_at is not None and self.tokens < self.burst:
            gained = (now - self._refilled_at) * self.per_second
            self.tokens = min(self.burst, self.tokens + gained)
        self._refilled_at = now

    def _tick(self) -> None:
        self._timer = None
        self._refill()
        self._grant()
