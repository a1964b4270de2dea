"""A lean fake model upstream for the benchmark: answers at once, in its own process.

``python -m bench.upstream PORT`` serves Ollama ``/api/chat``, Anthropic
``/v1/messages`` and OpenAI ``/v1/chat/completions`` on 127.0.0.1:PORT with a
fixed, valid answer (precomputed bytes: the upstream should cost as little CPU
as it can, since it shares the machine with the server and the load generator).
Ollama answers ``ok``, or ``{}`` to a call that asks for a JSON Schema (``format``).
Claude's answer is JSON text, valid against ``run.PRIME_SCHEMA``, or the same JSON
as the input of a ``tool_use`` block when the request forces a tool.
It prints ``ready`` when it listens.

Under ``/schema`` (an ``api_base`` of ``http://HOST:PORT/schema``) Ollama's ``/api/chat``
answers the JSON ``{"ok": true}``; under ``/repair`` it answers text that is not JSON,
unless the request carries the router's repair turn (its model's answer and the
validation error), and then the same JSON: one repair, for the repair row.
"""

from __future__ import annotations

import json
import sys

from aiohttp import web

ANSWERS = {
    "/api/chat": {
        "model": "qwen2.5:7b",
        "created_at": "2025-01-01T00:00:00.000000Z",
        "message": {"role": "assistant", "content": "ok"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 11,
        "eval_count": 7,
    },
    "/v1/messages": {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": '{"prime": true}'}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    },
    "/v1/chat/completions": {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1735689600,
        "model": "gpt-bench",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    },
}


def _ollama(text: str) -> bytes:
    message = {"role": "assistant", "content": text}
    return json.dumps({**ANSWERS["/api/chat"], "message": message}).encode()


VALID = _ollama('{"ok": true}')
INVALID = _ollama("ok, sure")
REPAIR_MARK = b"Your answer was rejected"


TOOL_ANSWER = {
    **ANSWERS["/v1/messages"],
    "content": [
        {
            "type": "tool_use",
            "id": "toolu_bench",
            "name": "json_tool_call",
            "input": {"prime": True},
        }
    ],
    "stop_reason": "tool_use",
}


def app() -> web.Application:
    application = web.Application()
    tool_body = json.dumps(TOOL_ANSWER).encode()
    for path, answer in ANSWERS.items():
        body = json.dumps(answer).encode()
        structured = body
        if path == "/api/chat":
            structured = json.dumps({**answer, "message": {"role": "assistant", "content": "{}"}})
            structured = structured.encode()

        async def handle(
            request: web.Request, body: bytes = body, structured: bytes = structured
        ) -> web.Response:
            asked = await request.read()
            if b'"tool_choice"' in asked:
                return web.Response(body=tool_body, content_type="application/json")
            answer = structured if b'"format"' in asked else body
            return web.Response(body=answer, content_type="application/json")

        application.router.add_post(path, handle)

    async def schema(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=VALID, content_type="application/json")

    async def repair(request: web.Request) -> web.Response:
        repaired = REPAIR_MARK in await request.read()
        return web.Response(body=VALID if repaired else INVALID, content_type="application/json")

    application.router.add_post("/schema/api/chat", schema)
    application.router.add_post("/repair/api/chat", repair)
    return application


def main() -> None:
    port = int(sys.argv[1])

    async def ready(_: web.Application) -> None:
        print("ready", flush=True)

    application = app()
    application.on_startup.append(ready)
    web.run_app(application, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
