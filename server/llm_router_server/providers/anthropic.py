"""Anthropic Messages, ``POST {api_base}/v1/messages`` (``anthropic/`` and bare ``claude-`` models).

Params are top-level keys of the body; the API key goes in ``x-api-key``;
system turns are joined into the top-level ``system``. Answers: the text
blocks joined; ``stop_reason`` mapped to a chat-completions finish reason as
litellm maps it (``refusal`` -> ``content_filter``, a refusal); prompt tokens
count cache writes and reads, as litellm counts them.

Structured output: calls that carry a schema are not served here
(``serves_schema = False``) and go to litellm, whose per-model rules for
Claude's structured output are large and change between versions. Native
structured output belongs in this module: set ``serves_schema``, add the
schema to ``body()`` and any beta header it needs to ``headers()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_router_server.providers import shaping
from llm_router_server.types import Completion, CompletionRequest, Usage

VERSION = "2023-06-01"
"""The ``anthropic-version`` header litellm sends."""

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
}


class Anthropic:
    """The ``anthropic`` wire protocol (see ``protocols.WireProtocol``)."""

    name = "anthropic"
    bare_prefixes: tuple[str, ...] = ("claude-",)
    params: Mapping[str, str] = {
        # litellm argument -> top-level key of the body ("api_key" -> x-api-key).
        "max_tokens": "max_tokens",
        "max_completion_tokens": "max_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "api_key": "",
    }
    base_variables: tuple[str, ...] = ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")
    default_base = "https://api.anthropic.com"
    key_variable: str | None = "ANTHROPIC_API_KEY"
    serves_schema = False
    unenforced: frozenset[str] = frozenset()  # not known to drop any

    def url(self, base: str) -> str:
        return base if base.endswith("/v1/messages") else base + "/v1/messages"

    def headers(self, key: str) -> dict[str, str]:
        return {"anthropic-version": VERSION, "x-api-key": key}

    def fixed_body(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"model": name, **options}

    def body(self, fixed: Mapping[str, Any], request: CompletionRequest) -> dict[str, Any]:
        turns = [m for m in request.messages if m.role != "system"]
        system = [m.content for m in request.messages if m.role == "system"]
        body = {**fixed, "messages": shaping.messages(turns)}
        if system:
            body["system"] = "\n\n".join(system)
        return body

    def completion(self, answer: Mapping[str, Any]) -> Completion:
        blocks = answer.get("content")
        if not isinstance(blocks, list):
            raise shaping.malformed("no content")
        text = "".join(
            b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
        stop = answer.get("stop_reason")
        counts = answer.get("usage")
        return shaping.completion(
            text,
            _FINISH.get(str(stop), stop),
            _usage(counts) if isinstance(counts, dict) else None,
        )


def _usage(counts: Mapping[str, Any]) -> Usage | None:
    """Prompt tokens include cache writes and reads, as litellm counts them."""
    prompt = counts.get("input_tokens")
    if not isinstance(prompt, int):
        return None
    for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        extra = counts.get(key)
        prompt += extra if isinstance(extra, int) else 0
    return shaping.usage(prompt, counts.get("output_tokens"))
