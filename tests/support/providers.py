"""Builders for tests of the provider seam: the two provider paths, a ``ModelSpec`` of each wire
protocol pointing at a fake, a ``CompletionRequest``, and ``fail`` (a call that must raise)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_router_server.errors import ProviderError
from llm_router_server.providers.base import Provider
from llm_router_server.providers.dispatch import DispatchProvider
from llm_router_server.providers.litellm_provider import LiteLLMProvider
from llm_router_server.types import CompletionRequest, Message, ModelSpec
from tests.support.upstream import Behaviour, FakeUpstream

PATHS = ("litellm", "native")
"""The provider paths: ``LiteLLMProvider``, and the server's ``DispatchProvider`` (the native
aiohttp path, which hands what it does not serve to litellm)."""

KINDS = ("ollama", "ollama_chat", "anthropic", "openai")
"""The wire protocols, named by the model prefix that selects them."""

SCHEMA = {
    "type": "object",
    "properties": {"action": {"type": "string"}},
    "required": ["action"],
    "additionalProperties": False,
}


def make_provider(path: str, default_max_tokens: int = 4096) -> Provider:
    """A provider of ``path`` (one of ``PATHS``)."""
    if path == "litellm":
        return LiteLLMProvider(default_max_tokens=default_max_tokens)
    return DispatchProvider(default_max_tokens=default_max_tokens)


def spec(kind: str, base: str, **params: Any) -> ModelSpec:
    """A ModelSpec of ``kind`` whose API is at ``base`` (a fake's URL or a dead port)."""
    model = {
        "ollama": "ollama/qwen2.5:7b",
        "ollama_chat": "ollama_chat/qwen2.5:7b",
        "anthropic": "claude-haiku-4-5-20251001",
        "openai": "openai/gpt-4o-mini",
    }[kind]
    api_base = base + "/v1" if kind == "openai" else base
    return ModelSpec(model=model, timeout=5.0, api_base=api_base, params=params)


def question(schema: dict[str, Any] | None = None, timeout: float = 5.0) -> CompletionRequest:
    """A system message and a user question; ``schema`` asks for structured output."""
    return CompletionRequest(
        messages=(Message("system", "Answer briefly."), Message("user", "What now?")),
        schema=schema,
        timeout=timeout,
    )


async def fail(
    provider: Provider, up: FakeUpstream, kind: str, behaviour: Behaviour
) -> ProviderError:
    """Call a model of ``kind`` at ``up``, which performs ``behaviour``; the call must raise a
    ``ProviderError``, which is returned."""
    up.script(behaviour)
    with pytest.raises(ProviderError) as info:
        await provider.complete(spec(kind, up.url), question(timeout=2.0))
    return info.value
