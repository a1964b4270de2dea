"""Warming models up at start-up: Ollama loads a model on its first call, which often takes
longer than the model's timeout, so the first call of the day would fall back to the cloud.

For each model with ``warm_up = true`` one tiny call is sent in the background after the
server started; its outcome is only logged (health never depends on it). Pair it with
``params = { keep_alive = "30m" }`` so Ollama keeps the model loaded between calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from llm_router_server.errors import ProviderError
from llm_router_server.providers.base import Provider
from llm_router_server.types import ChainSpec, CompletionRequest, Message, ModelSpec

logger = logging.getLogger("llm_router.warmup")

WARM_UP_TIMEOUT = 120.0
"""Seconds a warm-up call may take (loading a 7B model from disk can take a minute)."""


async def warm_up(provider: Provider, chains: Iterable[ChainSpec]) -> None:
    """Send one short call to every distinct model marked ``warm_up``, concurrently."""
    specs: dict[tuple[str, str | None], ModelSpec] = {}
    for chain in chains:
        for spec in chain.models:
            if spec.warm_up:
                specs.setdefault((spec.model, spec.api_base), spec)
    await asyncio.gather(*(_one(provider, spec) for spec in specs.values()))


async def _one(provider: Provider, spec: ModelSpec) -> None:
    request = CompletionRequest(
        messages=(Message("user", "Reply with OK."),), schema=None, timeout=WARM_UP_TIMEOUT
    )
    started = time.monotonic()
    try:
        async with asyncio.timeout(WARM_UP_TIMEOUT):
            await provider.complete(spec, request)
    except (ProviderError, TimeoutError) as exc:
        logger.warning("warm-up of %s failed (the service runs anyway): %s", spec.model, exc)
        return
    logger.info("warmed up %s in %.1fs", spec.model, time.monotonic() - started)
