"""Event messages framed by hand from each event's bytes equal what protobuf writes."""

from __future__ import annotations

import time

import pytest

from llm_router.v1 import router_pb2
from llm_router_server.service.convert import event_to_proto
from llm_router_server.service.watch_frames import WatchFrames, varint
from llm_router_server.types import Attempt, Category, Outcome, RouteEvent, RouteStatus


def event(i: int, note: str = "") -> RouteEvent:
    attempts = (
        Attempt("ollama_chat/qwen", Outcome.REJECTED, Category.TIMEOUT, note, 12.5),
        Attempt("anthropic/claude-haiku", Outcome.SUCCESS, Category.NONE, "", 300.0),
    )
    return RouteEvent(
        time.time(), RouteStatus.OK, "default", f"ctx-{i}", "anthropic/claude-haiku", 312.5,
        attempts, {"team": "a"}, event_id=f"1718000000000-{i}",
    )  # fmt: skip


def reference(events: list[RouteEvent], missed: int) -> bytes:
    return router_pb2.WatchMetricsResponse(
        events=router_pb2.EventBatch(events=[event_to_proto(e) for e in events]),
        missed_events=missed,
    ).SerializeToString()


@pytest.mark.parametrize("missed", [0, 1, 127, 128, 300, 2**40])
@pytest.mark.parametrize("count", [1, 2, 50])
def test_a_batch_equals_protobufs_own(missed: int, count: int) -> None:
    events = [event(i, "x" * (i * 7)) for i in range(count)]  # lengths across varint sizes
    assert WatchFrames().batch_message(events, missed) == reference(events, missed)


@pytest.mark.parametrize("missed", [0, 5, 2**40])
def test_a_single_event_message_equals_protobufs_own(missed: int) -> None:
    one = event(1, "y" * 200)
    expected = router_pb2.WatchMetricsResponse(event=event_to_proto(one), missed_events=missed)
    assert WatchFrames().event_message(one, missed) == expected.SerializeToString()


def test_varint_matches_protobuf() -> None:
    for value in (1, 127, 128, 16_383, 16_384, 2**35, 2**63 - 1):
        message = router_pb2.WatchMetricsResponse(missed_events=value)
        assert message.SerializeToString() == b"\x18" + varint(value)


def test_a_batch_stops_short_of_the_byte_limit() -> None:
    frames = WatchFrames()
    events = [event(i, "z" * 100) for i in range(10)]
    one = len(frames.batch_message(events[:1]))
    assert frames.fits(events, limit=3 * one) == 3
    assert frames.fits(events[:1], limit=1) == 1  # one event always fits
