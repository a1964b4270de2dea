"""WatchMetrics's event messages, built from each event's bytes serialized once (issue 14).

Every watcher of an event gets the same bytes: ``WatchFrames`` serializes a ``RouteEvent``
once and keeps it framed both ways, as the ``event`` of a message of its own and as one
element of an ``EventBatch``. A batch is those elements joined and framed by hand
(protobuf's length-delimited encoding: a tag byte, a varint length, the bytes), which
equals what ``SerializeToString`` of the same message gives (a test holds them equal).
``missed_events`` (field 3) goes in front of a batch (field 5) and after an event (field 2),
in field order as protobuf writes it; the shared bytes never hold it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from llm_router_server.service.convert import event_to_proto
from llm_router_server.types import RouteEvent

_EVENT_TAG = b"\x12"  # WatchMetricsResponse.event: field 2, length-delimited
_MISSED_TAG = b"\x18"  # WatchMetricsResponse.missed_events: field 3, varint
_BATCH_TAG = b"\x2a"  # WatchMetricsResponse.events: field 5, length-delimited
_IN_BATCH_TAG = b"\x0a"  # EventBatch.events: field 1, length-delimited

MAX_BATCH_BYTES = 1 << 20
"""Most bytes of events in one batch message (gRPC's default limit is 4 MiB); a batch
that would pass it stops short, and the rest go in the next."""


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative int (int64 fields take them so)."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _missed(missed: int) -> bytes:
    return _MISSED_TAG + varint(missed) if missed else b""


class WatchFrames:
    """The last events' bytes, serialized once each, for every watcher."""

    def __init__(self, capacity: int = 2256) -> None:
        self.capacity = capacity
        self._frames: OrderedDict[int, tuple[RouteEvent, bytes, bytes]] = OrderedDict()

    def _frame(self, event: RouteEvent) -> tuple[RouteEvent, bytes, bytes]:
        cached = self._frames.get(id(event))
        if cached is None or cached[0] is not event:
            payload = event_to_proto(event).SerializeToString()
            length = varint(len(payload))
            cached = (event, _EVENT_TAG + length + payload, _IN_BATCH_TAG + length + payload)
            self._frames[id(event)] = cached
            if len(self._frames) > self.capacity:
                self._frames.popitem(last=False)
        return cached

    def event_message(self, event: RouteEvent, missed: int = 0) -> bytes:
        """A ``WatchMetricsResponse`` with ``event`` (and ``missed_events`` when not 0)."""
        return self._frame(event)[1] + _missed(missed)

    def batch_message(self, events: Sequence[RouteEvent], missed: int = 0) -> bytes:
        """A ``WatchMetricsResponse`` with ``events`` holding ``events`` in order."""
        body = b"".join([self._frame(event)[2] for event in events])
        return _missed(missed) + _BATCH_TAG + varint(len(body)) + body

    def fits(self, events: Sequence[RouteEvent], limit: int = MAX_BATCH_BYTES) -> int:
        """How many of ``events``, from the first, fit in one batch (at least one)."""
        size = 0
        for n, event in enumerate(events):
            size += len(self._frame(event)[2])
            if size > limit and n:
                return n
        return len(events)
