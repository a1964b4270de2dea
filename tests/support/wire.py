"""What Ollama, Anthropic and OpenAI send, for the fake upstream: answers, refusals, and the
error bodies of each status, in each protocol's real framing (non-streaming)."""

from __future__ import annotations

import json
from typing import Any

REFUSAL_TEXT = "I cannot help with that request."
"""Ollama has no refusal signal: its "refusal" is an answer with this text."""


def _model(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        return str(body["model"])
    return "fake-model"


def answer_body(
    path: str,
    body: Any,
    text: str,
    usage: tuple[int, int] = (11, 7),
    finish: str = "stop",
    stop_reason: str | None = None,
) -> Any:
    """The reply on ``path`` to the request ``body`` whose answer is ``text``, with ``usage``
    (prompt and completion tokens), the finish reason ``finish`` (OpenAI) and Anthropic's
    ``stop_reason`` (default ``end_turn``, or ``tool_use`` for a forced tool)."""
    model = _model(body)
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
            reply["message"] = {"role": "assistant", "content": text}
        else:
            reply["response"] = text
            reply["context"] = [1, 2, 3]
        return reply
    if path == "/v1/messages":
        reply = {
            "id": "msg_fake01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": stop_reason or "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
        tool = _forced_tool(body)
        tool_input = _tool_input(tool, text) if tool is not None else None
        if tool is not None and tool_input is not None:
            # A forced tool: the real API answers with a tool_use block whose input is the JSON.
            block = {"type": "tool_use", "id": "toolu_fake01", "name": tool["name"]}
            reply["content"] = [{**block, "input": tool_input}]
            reply["stop_reason"] = stop_reason or "tool_use"
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
                "message": {"role": "assistant", "content": text},
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


def anthropic_rejects(body: Any, headers: Any) -> str | None:
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


def refusal_body(path: str, body: Any) -> Any:
    """The provider's own safety refusal on ``path`` (Ollama has none: a refusal text)."""
    if path == "/v1/messages":
        reply = answer_body(path, body, "")
        reply["stop_reason"] = "refusal"
        return reply
    if path in ("/api/chat", "/api/generate"):
        return answer_body(path, body, REFUSAL_TEXT)
    return answer_body(path, body, "", finish="content_filter")


# What the real services send for particular faults (the tests script them with HttpError).
ANTHROPIC_TOO_LONG = {
    "type": "error",
    "error": {
        "type": "invalid_request_error",
        "message": "prompt is too long: 210000 tokens > 200000 maximum",
    },
}
OPENAI_TOO_LONG = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages "
        "resulted in 9000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
OPENAI_POLICY = {
    "error": {
        "message": "Your request was rejected as a result of our safety system.",
        "type": "invalid_request_error",
        "param": None,
        "code": "content_policy_violation",
    }
}


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


def anthropic_error(status: int, message: str | None = None) -> Any:
    kind, default = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
    return {
        "type": "error",
        "error": {"type": kind, "message": message or default},
        "request_id": "req_fake01",
    }


def error_body(path: str, status: int) -> Any:
    """The body the real service sends with ``status`` on ``path``."""
    if path == "/v1/messages":
        return anthropic_error(status)
    if path.startswith("/api/"):
        return {"error": _OLLAMA_ERRORS.get(status, f"error {status}")}
    kind, code, message = _OPENAI_ERRORS.get(status, ("server_error", None, f"error {status}"))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
