"""Ollama's chat API, ``POST {api_base}/api/chat`` (litellm's ``ollama_chat/`` models).

Params go in the body's ``options`` under Ollama's names, as litellm's
``OllamaChatConfig`` maps them, except ``keep_alive`` (how long Ollama keeps the model
loaded), which goes at the top of the body; a caller's schema goes in ``format``. The
answer is one JSON object (``stream: false``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_router_server.providers import shaping
from llm_router_server.types import Completion, CompletionRequest


class OllamaChat:
    """The ``ollama_chat`` wire protocol (see ``protocols.WireProtocol``)."""

    name = "ollama_chat"
    bare_prefixes: tuple[str, ...] = ()
    params: Mapping[str, str] = {
        # litellm argument -> key in Ollama's "options".
        "max_tokens": "num_predict",
        "max_completion_tokens": "num_predict",
        "temperature": "temperature",
        "top_p": "top_p",
        "seed": "seed",
        "stop": "stop",
        "frequency_penalty": "repeat_penalty",
        "keep_alive": "keep_alive",
    }
    top_level = frozenset({"keep_alive"})
    """Params that are fields of the request itself, not of its ``options``."""
    base_variables: tuple[str, ...] = ("OLLAMA_API_BASE",)
    default_base = "http://localhost:11434"
    key_variable: str | None = None
    serves_schema = True
    # Ollama's grammar from a JSON Schema bounds the shape, not these: measured misses
    # were a string ``pattern``, ``maximum: 1`` answered with 1e15, and ``uniqueItems``.
    unenforced = frozenset(
        {
            "pattern",
            "format",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "uniqueItems",
        }
    )

    def url(self, base: str) -> str:
        return base + "/api/chat"

    def headers(self, key: str) -> dict[str, str]:
        return {}

    def call_headers(
        self, headers: Mapping[str, str], body: Mapping[str, Any]
    ) -> Mapping[str, str]:
        return headers

    def fixed_body(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        inner = {k: v for k, v in options.items() if k not in self.top_level}
        outer = {k: v for k, v in options.items() if k in self.top_level}
        return {"model": name, "options": inner, "stream": False, **outer}

    def body(self, fixed: Mapping[str, Any], request: CompletionRequest) -> dict[str, Any]:
        body = {**fixed, "messages": shaping.messages(request.messages)}
        if request.schema is not None:
            body["format"] = dict(request.schema)
        return body

    def completion(self, answer: Mapping[str, Any]) -> Completion:
        message = answer.get("message")
        return shaping.completion(
            message.get("content") if isinstance(message, dict) else None,
            answer.get("done_reason"),
            shaping.usage(answer.get("prompt_eval_count"), answer.get("eval_count")),
            answer.get("model"),
        )
