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
``Drop``, ``Malformed``, ``Truncated``, and ``Outage`` (one of them for a while, then
another: ``outage()`` starts one).
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

REFUSAL_TEXT = "I cannot help with that request."


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
            full = json.dumps(_answer(path, body, Answer("truncated"))).encode()
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
            error = behaviour.body if behaviour.body is not None else _error(path, behaviour.status)
            text = error if isinstance(error, str) else json.dumps(error)
            return web.Response(
                status=behaviour.status,
                text=text,
                content_type="application/json",
                headers=behaviour.headers,
            )
        if path == "/v1/messages" and (rejection := _anthropic_rejects(body, request.headers)):
            return web.json_response(_anthropic_error(400, rejection), status=400)
        if isinstance(behaviour, SafetyRefusal):
            return web.json_response(_refusal(path, body))
        assert isinstance(behaviour, Answer)
        return web.json_response(_answer(path, body, behaviour))


# -- the protocols' bodies ---------------------------------------------------------------


def _model(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        return str(body["model"])
    return "fake-model"


def _answer(path: str, body: Any, answer: Answer, finish: str = "stop") -> Any:
    model = _model(body)
    usage = (answer.prompt_tokens, answer.completion_tokens)
    if path in ("/api/chat", "/api/generate"):
        reply: dict[str, Any] = {
            "model": model,
            "created_at": "2025-01-01T00:00:00.000000Z",
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "load_duration": 1000,
            "prompt_eval_count": usage[0],
            "prompt_eval_duration": 1000,
            "eval_count": usage[1],
            "eval_duration": 1000,
        }
        if path == "/api/chat":
            reply["message"] = {"role": "assistant", "content": answer.text}
        else:
            reply["response"] = answer.text
            reply["context"] = [1, 2, 3]
        return reply
    if path == "/v1/messages":
        reply = {
            "id": "msg_fake01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": answer.text}] if answer.text else [],
            "stop_reason": answer.stop_reason or "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
        tool = _forced_tool(body)
        tool_input = _tool_input(tool, answer.text) if tool is not None else None
        if tool is not None and tool_input is not None:
            # A forced tool: the real API answers with a tool_use block whose input is the JSON.
            block = {"type": "tool_use", "id": "toolu_fake01", "name": tool["name"]}
            reply["content"] = [{**block, "input": tool_input}]
            reply["stop_reason"] = answer.stop_reason or "tool_use"
        return reply
    if path == "/api/show":
        return {
            "modelfile": "FROM fake",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": {"format": "gguf", "family": "qwen2", "parameter_size": "7.6B"},
            "model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768},
        }
    if path == "/api/tags":
        return {"models": [{"name": "qwen2.5:7b", "model": "qwen2.5:7b", "size": 1}]}
    # OpenAI-compatible (and anything else).
    return {
        "id": "chatcmpl-fake01",
        "object": "chat.completion",
        "created": 1735689600,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        },
    }


def _forced_tool(body: Any) -> dict[str, Any] | None:
    """The tool an Anthropic request forces with ``tool_choice``, if any (and it is offered)."""
    choice = body.get("tool_choice") if isinstance(body, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "tool":
        return None
    tools = body.get("tools")
    offered = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    return next((t for t in offered if t.get("name") == choice.get("name")), None)


def _tool_input(tool: dict[str, Any], text: str) -> dict[str, Any] | None:
    """What the model passes to the forced tool for an answer ``text`` (None: not JSON)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict):
        return value
    properties = tool.get("input_schema", {}).get("properties", {})
    # A non-object answer fills the tool's one property, as a model would.
    return {next(iter(properties)): value} if len(properties) == 1 else None


# What output_format's constrained decoder rejects (HTTP 400), per Anthropic's documentation.
_DECODER_REJECTS = frozenset(
    {"minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum"}
    | {"exclusiveMaximum", "multipleOf", "maxItems", "uniqueItems", "contains", "minContains"}
    | {"maxContains", "prefixItems", "minProperties", "maxProperties", "patternProperties"}
    | {"propertyNames", "dependentRequired", "dependentSchemas", "unevaluatedProperties"}
    | {"if", "then", "else", "not", "oneOf"}
)


def _anthropic_rejects(body: Any, headers: Any) -> str | None:
    """Why the real Messages API would refuse this structured-output request, if it would."""
    if not isinstance(body, dict):
        return None
    if "output_format" in body:
        betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",")]
        if "structured-outputs-2025-11-13" not in betas:
            return "output_format: Extra inputs are not permitted"
        output = body["output_format"]
        if not isinstance(output, dict) or output.get("type") != "json_schema":
            return "output_format.type: Input should be 'json_schema'"
        if not isinstance(output.get("schema"), dict):
            return "output_format.schema: Input should be a valid dictionary"
        for node in _schema_nodes(output["schema"]):
            kind = node.get("type")
            if kind == "object" and node.get("additionalProperties") is not False:
                return (
                    "output_format.schema: For 'object' type, 'additionalProperties' "
                    "must be explicitly set to false"
                )
            rejected = sorted(_DECODER_REJECTS.intersection(node))
            items = node.get("minItems")
            if isinstance(items, int) and items > 1:
                rejected.append("minItems")
            if rejected:
                where = f"output_format.schema: For '{kind}' type"
                return f"{where}, property '{rejected[0]}' is not supported"
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        tool = _forced_tool(body)
        if tool is None:
            return f"tool_choice: tool '{choice.get('name')}' not found in tools"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return "tools.0.custom.input_schema.type: Input should be 'object'"
    return None


def _schema_nodes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """``schema`` and every subschema in it."""
    nodes, stack = [], [schema]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for key, value in node.items():
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                stack.extend(v for v in value.values() if isinstance(v, dict))
            elif key in ("anyOf", "allOf", "oneOf", "prefixItems") and isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, dict))
            elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
                stack.append(value)
    return nodes


def _refusal(path: str, body: Any) -> Any:
    if path == "/v1/messages":
        reply = _answer(path, body, Answer(""))
        reply["stop_reason"] = "refusal"
        return reply
    if path in ("/api/chat", "/api/generate"):
        return _answer(path, body, Answer(REFUSAL_TEXT))
    return _answer(path, body, Answer(""), finish="content_filter")


_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "messages: field required"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "model: fake-model"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    503: ("overloaded_error", "Overloaded"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid value for 'messages'."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-fa****34."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Not supported."),
    404: ("invalid_request_error", "model_not_found", "The model `fake-model` does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_OLLAMA_ERRORS = {
    400: "invalid request",
    401: "unauthorized",
    404: 'model "fake-model" not found, try pulling it first',
    429: "too many requests",
    500: "an error was encountered while running the model: unexpected EOF",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def _anthropic_error(status: int, message: str | None = None) -> Any:
    kind, default = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
    return {
        "type": "error",
        "error": {"type": kind, "message": message or default},
        "request_id": "req_fake01",
    }


def _error(path: str, status: int) -> Any:
    """The body the real service sends with ``status`` on ``path``."""
    if path == "/v1/messages":
        return _anthropic_error(status)
    if path.startswith("/api/"):
        return {"error": _OLLAMA_ERRORS.get(status, f"error {status}")}
    kind, code, message = _OPENAI_ERRORS.get(status, ("server_error", None, f"error {status}"))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
