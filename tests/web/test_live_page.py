"""The live page on the metrics port, in a real headless browser against a running
server: it loads, follows the WatchMetrics stream as Route calls happen, and shows
untrusted text (contexts, reasons) as text."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from llm_router_server.config import MetricsConfig
from llm_router_server.pricing.book import PriceBook
from tests.support.server import Serve, anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream, HttpError
from tests.web.browser import Chromium

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "bench" / "out" / "live-page.png"
HOSTILE_CONTEXT = '<img src=x onerror="window.__pwned = 1">ops.<b>bold</b>'
HOSTILE_REASON = '<script>window.__pwned = 2</script><i onmouseover="x()">boom</i>'


def rows(table: str) -> str:
    return f"document.querySelectorAll('#{table} tbody tr').length"


async def test_the_page_follows_route_calls_live(
    serve: Serve, upstream: Any, browser: Chromium
) -> None:
    local: FakeUpstream = upstream()
    cloud: FakeUpstream = upstream()
    local.default = HttpError(500, body={"error": HOSTILE_REASON})
    cloud.default = Answer('{"action": "restart"}', prompt_tokens=42, completion_tokens=9)
    server = await serve(
        [ollama(local), anthropic(cloud)],
        metrics=MetricsConfig(prometheus_listen="127.0.0.1:0", replica_id="replica-a"),
    )
    assert server.app.web is not None
    page = f"http://127.0.0.1:{server.app.web.port}/"
    await server.route(context="before.the.page")  # shown from the backlog

    await browser.goto(page)

    assert await browser.wait_for("document.getElementById('status').dataset.state === 'live'")
    await browser.wait_for(f"{rows('calls')} === 1")
    await browser.wait_for(f"{rows('models')} === 2")
    assert await browser.evaluate("document.title") == "llm-router · live"
    models = await browser.evaluate(
        "[...document.querySelectorAll('#models tbody tr')].map(r => "
        "[...r.children].map(c => c.textContent))"
    )
    by_model = {row[0]: row for row in models}
    assert by_model["ollama_chat/qwen2.5:7b"][1:6] == ["local", "1", "0", "1", "0"]
    assert by_model["anthropic/claude-haiku-4-5-20251001"][1:6] == ["cloud", "1", "1", "0", "0"]
    assert by_model["ollama_chat/qwen2.5:7b"][10] == "closed"

    # A Route call now: its row appears at the top, and the counters follow.
    for _ in range(2):
        await server.route(context=HOSTILE_CONTEXT)
    await browser.wait_for(f"{rows('calls')} === 3")
    await browser.wait_for(
        "document.querySelector('#models tbody tr[data-model=\"ollama_chat/qwen2.5:7b\"]')"
        ".children[4].textContent === '3'"
    )
    top = await browser.evaluate(
        "(() => { const r = document.querySelector('#calls tbody tr');"
        " return [...r.children].map(c => c.textContent); })()"
    )
    assert top[1] == "replica-a" and top[2] == "default"
    assert top[3] == HOSTILE_CONTEXT  # the caller's text, as text
    assert top[4] == "ok" and top[5] == "anthropic/claude-haiku-4-5-20251001"
    assert "ollama_chat/qwen2.5:7b" in top[7] and "rejected" in top[7]
    assert "boom" in top[7] and "<i onmouseover" in top[7]  # the provider's text, as text
    assert await browser.evaluate("document.getElementById('answered').textContent") == "3"
    assert await browser.evaluate("document.getElementById('local-share').textContent") == "0.0 %"
    # Nothing the server sent became markup or ran.
    assert await browser.evaluate("window.__pwned === undefined")
    assert (
        await browser.evaluate(
            "document.querySelectorAll('#calls img, #calls b, #calls i, #calls script').length"
        )
        == 0
    )
    # Money: Haiku's three answers at its price; the local model has no price here, so its
    # attempts (and so each call) have an unknown cost, shown as such, never as $0.
    haiku = await PriceBook().price(anthropic(cloud))
    assert haiku is not None
    spent = 3 * (42 * haiku.input_per_mtok + 9 * haiku.output_per_mtok) / 1e6
    await browser.wait_for(
        "document.querySelector('#models tbody tr[data-model=\"anthropic/claude-haiku-4-5-20251001\"]')"  # noqa: E501
        f".children[12].textContent === '${spent:.6f}'"
    )
    models = await browser.evaluate(
        "[...document.querySelectorAll('#models tbody tr')].map(r => "
        "[...r.children].map(c => c.textContent))"
    )
    by_model = {row[0]: row for row in models}
    assert by_model["ollama_chat/qwen2.5:7b"][11:] == ["0", "$0.00 + 3 attempts unknown"]
    assert await browser.evaluate("document.getElementById('cost').textContent") == "$0.00"
    detail = await browser.evaluate("document.getElementById('cost-detail').textContent")
    assert detail == "+ 3 calls of unknown cost"
    assert await browser.evaluate("document.getElementById('cost-avoided').textContent") == "$0.00"
    assert top[8] == "unknown"  # the call's cost
    assert "unknown" in top[7]  # the local attempt's cost
    assert not await browser.evaluate("document.querySelectorAll('[data-placeholder]').length")

    shot = await browser.screenshot(SCREENSHOT)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


async def read_feed(port: int, messages: int) -> list[dict[str, Any]]:
    import aiohttp

    found: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/feed") as reply,
    ):
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "text/event-stream"
        async for line in reply.content:
            if line.startswith(b"data: "):
                found.append(json.loads(line[6:]))
                if len(found) >= messages:
                    break
    return found


async def test_the_page_and_its_feed_are_served_with_a_strict_policy(
    serve: Serve, upstream: Any
) -> None:
    import aiohttp

    up: FakeUpstream = upstream()
    server = await serve(
        [ollama(up)], metrics=MetricsConfig(prometheus_listen="127.0.0.1:0", replica_id="r1")
    )
    assert server.app.web is not None
    port = server.app.web.port
    async with aiohttp.ClientSession() as session:
        for path, kind in (
            ("/", "text/html"),
            ("/dashboard.js", "text/javascript"),
            ("/dashboard.css", "text/css"),
        ):
            async with session.get(f"http://127.0.0.1:{port}{path}") as reply:
                assert reply.status == 200
                assert reply.content_type == kind
                policy = reply.headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy and "default-src 'none'" in policy
                assert reply.headers["X-Content-Type-Options"] == "nosniff"
        async with session.get(f"http://127.0.0.1:{port}/metrics") as reply:
            assert reply.status == 200
            assert "llm_router_requests" in await reply.text()
        async with session.get(f"http://127.0.0.1:{port}/nothing-here") as reply:
            assert reply.status == 404

    (first,) = await read_feed(port, 1)
    snapshot = first["snapshot"]
    assert snapshot["replica_id"] == "r1" and snapshot["cluster_wide"] is False
    (row,) = snapshot["models"]
    assert row["model"] == "ollama_chat/qwen2.5:7b" and row["locality"] == "local"
    assert row["circuit"] == "CIRCUIT_STATE_CLOSED"

    feed = asyncio.ensure_future(read_feed(port, 3))
    await asyncio.sleep(0.3)
    await server.route(context="feed.test")
    messages = await asyncio.wait_for(feed, 10)
    events = [e for m in messages if "events" in m for e in m["events"]]  # in batches
    assert not any("event" in m for m in messages)
    assert events and events[0]["context"] == "feed.test"
    assert events[0]["status"] == "ROUTE_STATUS_OK"
