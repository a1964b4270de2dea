"""What a call sends and how its answer is judged: one place for both provider paths.

The native path (the wire modules ``ollama.py``, ``anthropic.py``, ``openai.py``)
and the litellm path (``litellm_provider.py``) must behave the same, so they
share the code that decides, not only the tests: the default ``max_tokens``,
the messages, the ``response_format`` for a caller's schema, the token totals,
and the refusal and empty-answer checks. Pure: imports no HTTP or provider library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llm_router_server.errors import (
    ProviderEmptyAnswerError,
    ProviderRefusalError,
    ProviderResponseError,
)
from llm_router_server.types import Completion, Message, Usage


def with_default_max_tokens(params: Mapping[str, Any], default: int) -> dict[str, Any]:
    """``params`` plus ``max_tokens = default`` unless they set a token limit.

    Anthropic's own default is the model's maximum (64000 for Haiku 4.5), so a
    limit is always sent.
    """
    params = dict(params)
    if "max_tokens" not in params and "max_completion_tokens" not in params:
        params["max_tokens"] = default
    return params


def messages(turns: Iterable[Message]) -> list[dict[str, str]]:
    """The conversation as chat-completions messages (``role``, ``content``)."""
    return [{"role": m.role, "content": m.content} for m in turns]


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's ``response_format`` for a caller's JSON Schema.

    ``strict: false``: OpenAI rejects (HTTP 400) any schema outside its strict
    subset, and the chain validates every answer against the schema anyway.
    """
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": dict(schema), "strict": False},
    }


def usage(prompt: object, completion: object, total: object = None) -> Usage | None:
    """Token counts when the provider reported both; the total defaults to their sum."""
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion, total if isinstance(total, int) else prompt + completion)


MAX_MODEL_NAME = 200
"""Longest model name kept from an answer (it is the upstream's text: bounded)."""


def completion(
    text: object, finish: object, counts: Usage | None, model: object = None
) -> Completion:
    """The answer, unless the provider refused or answered nothing.

    ``finish`` is the chat-completions finish reason (Claude's ``stop_reason:
    refusal`` arrives as ``content_filter``, as litellm maps it). ``model`` is the model
    name the answer reports, if any.
    """
    if finish == "content_filter":
        raise ProviderRefusalError("the provider refused to answer (content_filter)")
    if not isinstance(text, str) or not text:
        raise ProviderEmptyAnswerError(f"empty answer from provider (finish_reason {finish})")
    name = model[:MAX_MODEL_NAME] if isinstance(model, str) else ""
    return Completion(text=text, usage=counts, model=name, truncated=finish == "length")


def malformed(detail: str) -> ProviderResponseError:
    """The error for an answer that is not what the protocol promises."""
    return ProviderResponseError(f"malformed response from provider: {detail}")
