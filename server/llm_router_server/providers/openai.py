"""OpenAI chat completions, ``POST {api_base}/chat/completions`` (litellm's ``openai/`` models).

Params are top-level keys of the body; the API key goes in ``Authorization:
Bearer``; a caller's schema goes in ``response_format`` exactly as on the
litellm path (``shaping.response_format``). ``finish_reason: content_filter``
is a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_router_server.providers import shaping
from llm_router_server.types import Completion, CompletionRequest


class OpenAIChat:
    """The ``openai`` wire protocol (see ``protocols.WireProtocol``)."""

    name = "openai"
    bare_prefixes: tuple[str, ...] = ()
    params: Mapping[str, str] = {
        # litellm argument -> top-level key of the body ("api_key" -> Bearer).
        "max_tokens": "max_tokens",
        "max_completion_tokens": "max_completion_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "seed": "seed",
        "stop": "stop",
        "frequency_penalty": "frequency_penalty",
        "presence_penalty": "presence_penalty",
        "api_key": "",
    }
    base_variables: tuple[str, ...] = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
    default_base = "https://api.openai.com/v1"
    key_variable: str | None = "OPENAI_API_KEY"
    serves_schema = True
    unenforced: frozenset[str] = frozenset()  # not known to drop any

    def url(self, base: str) -> str:
        return base + "/chat/completions"

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def call_headers(
        self, headers: Mapping[str, str], body: Mapping[str, Any]
    ) -> Mapping[str, str]:
        return headers

    def fixed_body(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"model": name, **options}

    def body(self, fixed: Mapping[str, Any], request: CompletionRequest) -> dict[str, Any]:
        body = {**fixed, "messages": shaping.messages(request.messages)}
        if request.schema is not None:
            body["response_format"] = shaping.response_format(request.schema)
        return body

    def completion(self, answer: Mapping[str, Any]) -> Completion:
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise shaping.malformed("no choices")
        message = choices[0].get("message")
        counts = answer.get("usage")
        if not isinstance(counts, dict):
            counts = {}
        return shaping.completion(
            message.get("content") if isinstance(message, dict) else None,
            choices[0].get("finish_reason"),
            shaping.usage(
                counts.get("prompt_tokens"),
                counts.get("completion_tokens"),
                counts.get("total_tokens"),
            ),
            answer.get("model"),
        )
