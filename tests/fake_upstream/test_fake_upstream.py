"""The wire-level fake itself: scripting, recording, disconnects, its own thread."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from tests.support.fixtures import Upstream
from tests.support.net import post_json
from tests.support.upstream import Answer, Drop, Hang, HttpError, Slow


def post(url: str, body: Any) -> tuple[int, Any]:
    """A blocking POST (the calling thread and its event loop wait): status and parsed JSON."""
    status, text = post_json(url, body)
    return status, json.loads(text)


async def test_script_then_default_and_on_path_wins(upstream: Upstream) -> None:
    up = upstream()
    up.script(Answer("first"), HttpError(429))
    up.on_path("/api/show", HttpError(500))
    assert post(up.url + "/api/chat", {"model": "m"})[1]["message"]["content"] == "first"
    status, body = post(up.url + "/v1/messages", {"model": "m"})
    assert (status, body["error"]["type"]) == (429, "rate_limit_error")
    assert post(up.url + "/v1/chat/completions", {})[1]["choices"][0]["message"]["content"] == "ok"
    assert post(up.url + "/api/show", {"name": "m"})[0] == 500
    assert [r.path for r in up.chat_requests()] == [
        "/api/chat",
        "/v1/messages",
        "/v1/chat/completions",
    ]
    assert up.requests[-1].body == {"name": "m"}


async def test_the_fake_answers_while_the_callers_loop_is_blocked(upstream: Upstream) -> None:
    """It runs in its own thread: a blocking call from this loop still gets its answer."""
    up = upstream()
    up.script(Slow(0.2, Answer("late")))
    started = time.monotonic()
    assert post(up.url + "/api/generate", {"model": "m"})[1]["response"] == "late"
    assert 0.2 <= time.monotonic() - started < 2.0


async def test_a_client_leaving_a_hung_request_counts_as_a_disconnect(upstream: Upstream) -> None:
    up = upstream()
    up.script(Hang(), Drop())
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            await session.post(up.url + "/api/chat", json={}, timeout=aiohttp.ClientTimeout(0.2))
        assert await up.wait_for_disconnects(1, 2.0)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post(up.url + "/api/chat", json={})
    assert not await up.wait_for_disconnects(2, 0.2)  # the fake's own Drop is not one
