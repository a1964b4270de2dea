"""The provider seam: how the chain asks one model for one completion.

A ``Provider`` turns a ``CompletionRequest`` for a ``ModelSpec`` into a
``Completion`` or raises a ``ProviderError`` subclass (see ``errors.py``). It
never raises anything else on purpose: implementations translate their
library's exceptions at this seam.

Implementations: ``DispatchProvider`` (``dispatch.py``, what the server uses)
over ``AiohttpProvider`` (``http_provider.py``, the native path) and
``LiteLLMProvider`` (``litellm_provider.py``). The in-process fake for tests of
the chain, ``ScriptedProvider``, lives in ``tests/support/scripted_provider.py``.
"""

from __future__ import annotations

from typing import Protocol

from llm_router_server.types import Completion, CompletionRequest, ModelSpec


class Provider(Protocol):
    """Calls one model once."""

    async def start(self) -> None:
        """Do once, before the first call, what would otherwise slow it (imports, warm-up)."""

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        """Return the model's answer, or raise a ``ProviderError``.

        Must honour ``request.timeout`` and must stop the upstream request when
        the awaiting task is cancelled.
        """

    async def aclose(self) -> None:
        """Release connections."""
