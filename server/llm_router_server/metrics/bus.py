"""The metrics seam: ``MetricsBus`` carries one event per Route call to whoever watches.

The chain hands each finished call's ``RouteEvent`` to ``MetricsBus.publish``, which must
return at once and never raise: a slow or dead metrics backend must not slow a Route call.
Two implementations sit beside this module: ``InMemoryMetricsBus`` (``memory.py``), the
embedded default and the fake of the seam, and ``RedisMetricsBus`` (``redis_bus.py``),
which shares events and counters between replicas. Both serve this process's watchers
through ``LocalWatchers`` (``watchers.py``).

Watchers get a ``Subscription``: a place in one shared ring of events, at most ``maxsize``
behind. When a watcher reads too slowly, or the watchers' send budget holds it back, what
it skips is counted (``missed``) and reported to it, and nobody else waits. Events carry
an id in Redis Stream form (``"<unix ms>-<seq>"``) by which a watcher resumes
(``replay``). Events never hold prompt or answer text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from llm_router_server.breaker.rules import Transition
from llm_router_server.metrics.counters import ChainStats, ModelStats
from llm_router_server.safe_text import echo
from llm_router_server.types import RouteEvent

if TYPE_CHECKING:
    from llm_router_server.metrics.watchers import Subscription

EventFilter = Callable[[RouteEvent], bool]
"""A watcher's filter: True for the events it wants."""

Notice = RouteEvent | Transition
"""What a watcher's queue holds: Route events, and this replica's circuit changes."""


def parse_event_id(event_id: str) -> tuple[int, int]:
    """``"1718000000000-3"`` -> ``(1718000000000, 3)``; ValueError when it is not one."""
    ms, sep, seq = event_id.partition("-")
    if not (sep and ms.isdigit() and seq.isdigit()):
        raise ValueError(f"not an event id like '1718000000000-0': {echo(event_id)}")
    return int(ms), int(seq)


@dataclass(frozen=True)
class BusStats:
    """How the bus is doing, for the Prometheus endpoint and logs."""

    published: int
    """Events handed to ``publish`` by this process."""
    dropped: int
    """Events lost because the publish buffer was full (Redis slow or down)."""
    buffered: int
    """Events waiting to be sent."""
    watchers: int
    """Subscriptions open now."""
    watcher_missed: int
    """Events that overflowed a watcher's queue, summed over closed and open watchers."""
    connected: bool
    """The backend is reachable (always true in-process)."""


class MetricsBus(Protocol):
    """Carries Route events to whoever watches."""

    replica_id: str

    async def start(self) -> None:
        """Start background work (connections, senders). Never fails when a backend is down."""

    def publish(self, event: RouteEvent) -> None:
        """Hand one event over. Returns at once; never raises; never waits for I/O."""

    def observe(self, callback: Callable[[RouteEvent], None]) -> None:
        """Call ``callback`` with each event this process publishes, inside ``publish``
        (for local exporters such as Prometheus). It must be quick; errors are logged."""

    def subscribe(
        self, maxsize: int = 1000, accept: EventFilter | None = None, *, batched: bool = False
    ) -> Subscription:
        """Start receiving events (every replica's, where the bus is shared) into a bounded
        queue, keeping only those ``accept`` lets through; ``batched`` for a watcher that
        reads them with ``Subscription.get_batch`` (it shares the batch budget)."""

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop receiving events."""

    def notice(self, change: Transition) -> None:
        """Hand one of this replica's circuit changes to its local watchers. Never blocks."""

    async def replay(self, after_id: str) -> Sequence[RouteEvent] | None:
        """Events held after ``after_id``, oldest first; None when they cannot be read now."""

    async def cluster_stats(self) -> Mapping[str, ModelStats] | None:
        """Counters shared by every replica; None when there are none (in-process, or the
        backend is unreachable): the caller then uses this process's own."""

    async def cluster_chain_stats(self) -> Mapping[str, ChainStats] | None:
        """Per-chain counters shared by every replica; None as for ``cluster_stats``."""

    def stats(self) -> BusStats:
        """Counts for monitoring the bus itself."""

    async def aclose(self) -> None:
        """Flush what can be flushed quickly and release connections."""
