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
    path: str, body: Any, text: str, usage: tuple[int, int] = (11, 7), finish: str = "stop"
) -> Any:
    """The reply on ``path`` to the request ``body`` whose answer is ``text``, with ``usage``
    (prompt and completion tokens) and the finish reason ``finish`` (OpenAI)."""
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
        forced = _forced_tool(body)
        if forced is not None and text:
            # litellm turns an open-object schema into a forced tool call; the real API then
            # answers with a tool_use block whose input is the JSON (when the text is JSON).
            try:
                tool_input = json.loads(text)
            except json.JSONDecodeError:
                tool_input = None
            if isinstance(tool_input, dict):
                return {
                    "id": "msg_fake01",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "toolu_fake01",
                            "name": forced,
                            "input": tool_input,
                        }
                    ],
                    "stop_reason": "tool_use",
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
                }
        return {
            "id": "msg_fake01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
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


def _forced_tool(body: Any) -> str | None:
    """The tool name an Anthropic request forces with ``tool_choice``, if any."""
    choice = body.get("tool_choice") if isinstance(body, dict) else None
    if isinstance(choice, dict) and choice.get("type") == "tool":
        name = choice.get("name")
        return name if isinstance(name, str) else None
    return None


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


def error_body(path: str, status: int) -> Any:
    """The body the real service sends with ``status`` on ``path``."""
    if path == "/v1/messages":
        kind, message = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_fake01",
        }
    if path.startswith("/api/"):
        return {"error": _OLLAMA_ERRORS.get(status, f"error {status}")}
    kind, code, message = _OPENAI_ERRORS.get(status, ("server_error", None, f"error {status}"))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
