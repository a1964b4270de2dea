"""Issue 10, item 2: the caller's ``context`` is bounded, and no caller or model text can
forge, colour or cut a log line.

Before: a 4 MB context was accepted, kept in every event (60 calls took a server from 60 to
335 MB RSS, held by the event history) and logged raw, so a newline in it wrote a forged
record and NUL and ANSI escapes reached the terminal. After: a context over
``limits.max_context_chars`` (256) is INVALID_ARGUMENT before any model is called, events
keep only bounded text, and every log line is escaped and redacted by the log formatter.
"""

from __future__ import annotations

import gc
import io
import logging
import re
import signal
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from rich.console import Console

from llm_router.v1 import router_pb2
from llm_router_server.cli.watch_view import ViewState, render
from llm_router_server.config import Limits
from llm_router_server.logs import SafeFormatter
from llm_router_server.types import RouteEvent
from tests.support.net import free_port
from tests.support.processes import ServerProcess
from tests.support.server import Serve, ollama
from tests.support.upstream import Answer, FakeUpstream, HttpError

pytestmark = pytest.mark.timeout(120)

FORGED = "2026-01-01 00:00:00,000 CRITICAL llm_router: FORGED LOG LINE"
HOSTILE_CONTEXT = f"ctx] ok\n{FORGED} [\x00\x1b[31m\u2028\r"


def message(text: str = "hi") -> list[router_pb2.Message]:
    return [router_pb2.Message(role="user", content=text)]


async def test_a_context_over_the_limit_is_invalid_argument_before_any_model_is_called(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    up = upstream()
    server = await serve([ollama(up)])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.stub.Route(
            router_pb2.RouteRequest(messages=message(), context="x" * 4_000_000), timeout=30
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "context has 4000000 characters; the limit is 256"
    assert up.chat_requests() == []

    reply = await server.stub.Route(
        router_pb2.RouteRequest(messages=message(), context="x" * 256), timeout=30
    )
    assert reply.content.string_value == "ok"


async def test_the_context_limit_is_configured(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    server = await serve([ollama(upstream())], limits=Limits(max_context_chars=8))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.route(context="123456789")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the limit is 8" in (info.value.details() or "")
    assert (await server.route(context="12345678")).content.string_value == "ok"


async def test_big_contexts_are_not_kept_memory_stays_flat(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """60 calls with a 4 MB context keep nothing (the issue's repro kept 240 MB in events);
    events hold contexts of at most the limit."""
    server = await serve([ollama(upstream())])
    events: list[RouteEvent] = []
    server.app.bus.observe(events.append)
    big = router_pb2.RouteRequest(messages=message(), context="x" * 4_000_000)
    await server.route(context="warm")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(60):
            with pytest.raises(grpc.aio.AioRpcError):
                await server.stub.Route(big, timeout=30)
            await server.route(context="c" * 256 if i % 2 else "short")
        del big
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 8 * 1024 * 1024, f"{held / 1e6:.1f} MB still held after the calls"
    assert len(events) == 61
    assert max(len(e.context) for e in events) == 256


async def test_caller_and_model_text_cannot_forge_or_colour_a_log_line(
    tmp_path: Path, upstream: Callable[[], FakeUpstream]
) -> None:
    """A context with a newline, NUL, ANSI escapes and a Unicode line separator, and a
    model whose error text has the same, reach the server's log (its stderr) as one
    escaped line each: no forged record, no raw control byte."""
    bad, good = upstream(), upstream()
    bad.default = HttpError(500, {"error": f"boom\x1b[2J\n{FORGED} BY THE MODEL\x00"})
    good.default = Answer("fine")
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
[chains.default]
models = [
  {{ model = "ollama_chat/bad", timeout = 5, api_base = "{bad.url}" }},
  {{ model = "ollama_chat/good", timeout = 5, api_base = "{good.url}" }},
]
"""
    )
    server = ServerProcess(config)
    try:
        await server.wait_healthy()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                "/llm_router.v1.Router/Route",
                request_serializer=router_pb2.RouteRequest.SerializeToString,
                response_deserializer=router_pb2.RouteResponse.FromString,
            )
            reply = await call(
                router_pb2.RouteRequest(messages=message(), context=HOSTILE_CONTEXT), timeout=30
            )
        assert reply.content.string_value == "fine"
        await server.wait_for_output("ollama_chat/good -> success")
    finally:
        server.stop(signal.SIGINT)
        output = server.raw_output
    text = output.decode("utf-8")
    for control in ("\x00", "\x1b", "\r", "\u2028"):
        assert control not in text, repr(control)
    lines = text.split("\n")
    assert not [line for line in lines if line.startswith(FORGED[:23])], text
    escaped = r"[ctx] ok\n" + FORGED + r" [\x00\x1b[31m\u2028\r] "
    success = [line for line in lines if "ollama_chat/good -> success" in line]
    assert len(success) == 1 and escaped in success[0], text
    rejected = [line for line in lines if "ollama_chat/bad -> rejected" in line]
    assert len(rejected) == 1, text
    assert r"HTTP 500 from provider: boom\x1b[2J " + FORGED + " BY THE MODEL" in rejected[0]


def test_a_traceback_is_indented_under_its_line_and_escaped() -> None:
    """An exception whose message carries a forged record stays inside its record: every
    traceback line is indented, control characters escaped."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("tests.hostile.traceback")
    log.addHandler(handler)
    log.propagate = False
    try:
        raise ValueError(f"bad\n{FORGED}\x1b[0m")
    except ValueError:
        log.exception("failed for %s", "caller\ntext")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == r"ERROR tests.hostile.traceback: failed for caller\ntext"
    assert all(line.startswith("    ") for line in lines[1:]), lines
    assert f"    {FORGED}\\x1b[0m" in lines
    assert not any(re.match(r"\d{4}-", line) for line in lines)


def test_a_line_s_time_is_the_standard_formatter_s_across_seconds() -> None:
    """The text formatter formats each whole second once; its time text stays exactly the
    standard ``logging.Formatter``'s, within a second, across seconds and going back."""
    ours, standard = SafeFormatter(), logging.Formatter()
    for created in (1764444000.0, 1764444000.999, 1764444001.0005, 1764443999.5, 0.25, 1e9):
        record = logging.makeLogRecord({"msg": "x"})
        record.created = created
        record.msecs = int((created - int(created)) * 1000) + 0.0
        assert ours.formatTime(record) == standard.formatTime(record)
        assert ours.formatTime(record, "%H:%M") == standard.formatTime(record, "%H:%M")


def test_the_live_watch_view_shows_a_hostile_context_escaped_and_without_markup() -> None:
    """``llm-router watch`` draws contexts in a terminal: no markup, no control characters."""
    state = ViewState()
    event = router_pb2.RouteEvent(
        status=router_pb2.ROUTE_STATUS_OK, chain="default", context="[bold]x\x1b[31m\ny"
    )
    state.update(router_pb2.WatchMetricsResponse(event=event))
    console = Console(record=True, width=200)
    console.print(render(state, "127.0.0.1:50051"))
    screen = console.export_text()
    assert r"[bold]x\x1b[31m\ny" in screen and "\x1b" not in screen
