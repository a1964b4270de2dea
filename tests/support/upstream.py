"""A wire-level fake of the model providers: one HTTP server on 127.0.0.1.

``FakeUpstream`` speaks, on their real paths and in their real framing
(non-streaming only):

- Ollama: ``POST /api/chat``, ``POST /api/generate``, ``POST /api/show``, ``GET /api/tags``;
- Anthropic: ``POST /v1/messages``, with both forms of structured output: ``output_format``
  (refused with HTTP 400, as the real API refuses it, without the
  ``anthropic-beta: structured-outputs-2025-11-13`` header, or with a schema the
  constrained decoder cannot take) and a forced tool (``tool_choice: {type: tool}``; refused
  when the tool is missing or its ``input_schema`` is not an object), answered
  with a ``tool_use`` block whose ``input`` is the answer's JSON;
- OpenAI-compatible: ``POST /v1/chat/completions``.

It runs in its own thread with its own event loop, so a client that blocks its
own loop cannot block the fake. Model calls play the behaviours queued with
``script()`` in order, then ``default``; ``on_path()`` fixes the behaviour of one
path; ``choose``, when set, picks a behaviour from the request itself (first of all).
Every request is recorded.

Behaviours: ``Answer``, ``SafetyRefusal``, ``HttpError``, ``Hang``, ``Slow``,
``Drop``, ``Malformed``, ``Truncated``, and ``Outage`` (one of them for a while, then another:
``outage()`` starts one). What each protocol's replies look like is in
``wire.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.wire import (
    answer_body,
    anthropic_error,
    anthropic_rejects,
    error_body,
    refusal_body,
)

CHAT_PATHS = frozenset({"/api/chat", "/api/generate", "/v1/messages", "/v1/chat/completions"})


@dataclass(frozen=True)
class Answer:
    """HTTP 200 with ``text`` as the model's answer and the given token counts."""

    text: str
    prompt_tokens: int = 11
    completion_tokens: int = 7
    stop_reason: str | None = None
    """Anthropic's ``stop_reason`` (default ``end_turn``, or ``tool_use`` for a forced tool)."""


@dataclass(frozen=True)
class SafetyRefusal:
    """The provider's own safety refusal.

    Anthropic: HTTP 200, ``stop_reason: "refusal"``, empty content. OpenAI: HTTP 200,
    ``finish_reason: "content_filter"``, empty content. Ollama has no refusal
    signal at all: the closest real equivalent is a normal answer whose text is a
    refusal (``done_reason: "stop"``), which only the router's refusal patterns catch.
    """


@dataclass(frozen=True)
class HttpError:
    """An HTTP error status; ``body`` defaults to the protocol's real error JSON."""

    status: int
    body: Any = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Hang:
    """Never answer; the request ends only when the client goes away."""


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds``, then perform ``then``."""

    seconds: float
    then: Behaviour


@dataclass(frozen=True)
class Drop:
    """Close the TCP connection without sending any response."""


@dataclass(frozen=True)
class Malformed:
    """HTTP 200, ``Content-Type: application/json``, with a body that is not JSON."""

    body: str = "{not json"


@dataclass(frozen=True)
class Truncated:
    """HTTP 200 announcing more bytes (Content-Length) than it sends, then close."""


@dataclass(frozen=True)
class Outage:
    """``fault`` until ``until`` (a ``time.monotonic()`` time), then ``then``: a model that
    fails for a while and recovers. With ``Hang()`` as the fault, a request that came during
    the outage is never answered, even after it (it is held until the client goes away)."""

    until: float
    fault: Behaviour
    then: Behaviour


Behaviour = Answer | SafetyRefusal | HttpError | Hang | Slow | Drop | Malformed | Truncated | Outage


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    path: str
    body: Any
    """Parsed JSON, or None when the body was empty or not JSON."""
    headers: dict[str, str]
    at: float = 0.0
    """When it arrived (``time.monotonic()``)."""


class FakeUpstream:
    """Ollama, Anthropic and OpenAI on one port of 127.0.0.1, in a thread of its own."""

    def __init__(self) -> None:
        self.default: Behaviour = Answer("ok")
        self.requests: list[Recorded] = []
        self.disconnects = 0
        self._queue: deque[Behaviour] = deque()
        self._paths: dict[str, Behaviour] = {}
        self.choose: Callable[[str, Any], Behaviour | None] | None = None
        """Called with (path, parsed JSON body) for every request; a Behaviour it returns
        wins over ``on_path``, the queue and ``default``; None falls through to them."""
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-upstream", daemon=True
        )
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._closed = False
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{port}"

    # -- control (called from the test's thread) ------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next model calls (chat, generate, messages, completions)."""
        with self._lock:
            self._queue.extend(behaviours)

    def outage(self, fault: Behaviour, seconds: float) -> float:
        """From now on, ``fault`` for ``seconds``, then ``default`` as it was; returns the
        ``time.monotonic()`` time of the recovery."""
        until = time.monotonic() + seconds
        with self._lock:
            self.default = Outage(until, fault, self.default)
        return until

    def on_path(self, path: str, behaviour: Behaviour) -> None:
        """Give every request to ``path`` this behaviour (it takes precedence over the queue)."""
        with self._lock:
            self._paths[path] = behaviour

    def chat_requests(self) -> list[Recorded]:
        """The recorded requests to model-call paths, in order."""
        with self._lock:
            return [r for r in self.requests if r.path in CHAT_PATHS]

    async def wait_for_disconnects(self, n: int, timeout: float) -> bool:  # noqa: ASYNC109 (public API)
        """Wait until at least ``n`` clients went away before their reply; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.disconnects < n:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop the server and its thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the server (runs in the fake's thread) ----------------------------------------------

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that goes away cancels its handler, which is
        # how disconnects are seen.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next(self, path: str, body: Any) -> Behaviour:
        choose = self.choose
        if choose is not None and (chosen := choose(path, body)) is not None:
            return chosen
        with self._lock:
            if path in self._paths:
                return self._paths[path]
            if path in CHAT_PATHS and self._queue:
                return self._queue.popleft()
            return self.default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            recorded = Recorded(request.path, body, dict(request.headers), time.monotonic())
            self.requests.append(recorded)
        behaviour = self._next(request.path, body)
        closing = [False]  # set when the fake itself closes the connection
        try:
            return await self._perform(request, body, behaviour, closing)
        except asyncio.CancelledError:
            if not closing[0] and not self._closed:
                with self._lock:
                    self.disconnects += 1
            raise

    async def _perform(
        self, request: web.Request, body: Any, behaviour: Behaviour, closing: list[bool]
    ) -> web.StreamResponse:
        while isinstance(behaviour, Slow | Outage):
            if isinstance(behaviour, Outage):
                now = time.monotonic()
                behaviour = behaviour.fault if now < behaviour.until else behaviour.then
                continue
            await asyncio.sleep(behaviour.seconds)
            behaviour = behaviour.then
        path = request.path
        if isinstance(behaviour, Hang):
            await asyncio.Future()  # until cancelled by the client's disconnect
        if isinstance(behaviour, Drop):
            closing[0] = True
            assert request.transport is not None
            request.transport.abort()
            await asyncio.Future()  # aiohttp cancels the handler of a lost connection
        if isinstance(behaviour, Truncated):
            closing[0] = True
            full = json.dumps(answer_body(path, body, "truncated")).encode()
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = len(full) + 100
            await response.prepare(request)
            await response.write(full[: len(full) // 2])
            assert request.transport is not None
            request.transport.close()
            await asyncio.Future()
        if isinstance(behaviour, Malformed):
            return web.Response(status=200, text=behaviour.body, content_type="application/json")
        if isinstance(behaviour, HttpError):
            error = (
                behaviour.body if behaviour.body is not None else error_body(path, behaviour.status)
            )
            text = error if isinstance(error, str) else json.dumps(error)
            return web.Response(
                status=behaviour.status,
                text=text,
                content_type="application/json",
                headers=behaviour.headers,
            )
        if path == "/v1/messages" and (rejection := anthropic_rejects(body, request.headers)):
            return web.json_response(anthropic_error(400, rejection), status=400)
        if isinstance(behaviour, SafetyRefusal):
            return web.json_response(refusal_body(path, body))
        assert isinstance(behaviour, Answer)
        usage = (behaviour.prompt_tokens, behaviour.completion_tokens)
        reply = answer_body(path, body, behaviour.text, usage, stop_reason=behaviour.stop_reason)
        return web.json_response(reply)
