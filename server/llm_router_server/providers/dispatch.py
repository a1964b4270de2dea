"""``DispatchProvider``: the server's provider; sends each call to the native path or litellm.

Per model, ``ModelSpec.provider`` decides (config key ``provider``):

- ``"auto"`` (default): the native HTTP path (``AiohttpProvider``) when it speaks
  the model's protocol and params (see ``protocols.py``), else litellm;
- ``"native"``: the native path (the configuration refuses a model it cannot serve);
- ``"litellm"``: always ``litellm.acompletion``.

Calls that carry a schema to a protocol whose native module does not serve
schemas (``serves_schema``; none today: Claude's structured output is native,
see ``anthropic.py``) would go to litellm whatever the setting. A model string
the native path does not know always goes to litellm. So the default chain
(Ollama, Claude Haiku, Claude Sonnet) never imports litellm, schema or not.

Start-up: ``import litellm`` takes seconds, so ``start()`` begins it in a worker
thread and returns at once; the server reports SERVING while it runs. A call
that needs litellm before it is ready waits for it within its own timeout (the
chain's budget for that attempt), so no call is ever answered by a
half-loaded provider. When no configured model needs litellm it is not
imported until a call does need it.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from llm_router_server.errors import ProviderError
from llm_router_server.providers.http_provider import DEFAULT_MAX_ANSWER_CHARS, AiohttpProvider
from llm_router_server.providers.protocols import unsupported, wire_of
from llm_router_server.providers.reasons import clean
from llm_router_server.types import Completion, CompletionRequest, ModelSpec

if TYPE_CHECKING:
    from llm_router_server.providers.base import Provider

logger = logging.getLogger(__name__)


class DispatchProvider:
    """A ``Provider`` over ``AiohttpProvider`` and a lazily loaded ``LiteLLMProvider``."""

    def __init__(
        self,
        models: Iterable[ModelSpec] = (),
        *,
        default_max_tokens: int = 4096,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
    ) -> None:
        self.default_max_tokens = default_max_tokens
        self.native = AiohttpProvider(
            default_max_tokens=default_max_tokens, max_answer_chars=max_answer_chars
        )
        self._models = tuple(models)
        self._litellm: Provider | None = None
        self._loading: asyncio.Task[Provider] | None = None

    async def start(self) -> None:
        """Start the native path; begin loading litellm if a configured model may need it."""
        await self.native.start()
        for model in self._models:
            why = unsupported(model) if model.provider == "auto" else None
            if why is not None and wire_of(model.model) is not None:
                # A protocol the native path speaks, lost to one param: say so once.
                logger.info("%s goes through litellm: %s", model.model, why)
        if any(self._may_need_litellm(m) for m in self._models):
            self._load()

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        if model.provider != "litellm" and self.native.serves(model, request):
            return await self.native.complete(model, request)
        provider = self._litellm
        if provider is None:
            provider = await asyncio.shield(self._load())
        return await provider.complete(model, request)

    async def aclose(self) -> None:
        await self.native.aclose()
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self._litellm is not None:
            await self._litellm.aclose()

    @property
    def litellm_ready(self) -> bool:
        return self._litellm is not None

    def _may_need_litellm(self, model: ModelSpec) -> bool:
        endpoint = None if model.provider == "litellm" else self.native.endpoint(model)
        return endpoint is None or (model.structured_output and not endpoint.wire.serves_schema)

    def _load(self) -> asyncio.Task[Provider]:
        if self._loading is None:
            self._loading = asyncio.create_task(self._import_litellm(), name="load-litellm")
        return self._loading

    async def _import_litellm(self) -> Provider:
        started = time.monotonic()
        try:
            # The provider module sets LITELLM_OFFLINE_MODE before importing litellm.
            module = await asyncio.to_thread(
                importlib.import_module, "llm_router_server.providers.litellm_provider"
            )
            provider: Provider = module.LiteLLMProvider(default_max_tokens=self.default_max_tokens)
            await provider.start()
        except Exception as exc:
            logger.exception("litellm failed to load")
            raise ProviderError(clean(f"litellm failed to load: {exc}")) from exc
        self._litellm = provider
        # litellm brings ~350k long-lived objects; keep the cyclic GC from walking them
        # on every full collection (measured: ~0.1 ms CPU per Route).
        gc.freeze()
        logger.info("litellm ready in %.2fs", time.monotonic() - started)
        return provider
