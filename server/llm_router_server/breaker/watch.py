"""The calls in flight, as the breaker watches them: how a model that hangs is found fast.

``WatchedProvider`` wraps the provider the chain calls. For each call it:

- counts the call as one failure of its model as soon as it has waited
  ``hang_fraction`` of the model's timeout without an answer
  (``CircuitBreaker.slow_call``), so a silent model opens its circuit once
  ``failure_threshold`` calls have waited that long, not after as many whole
  timeouts (an answer that comes later still counts as a success);
- when the model's circuit is seen open, cuts short the calls still waiting on it
  (``ProviderCutShortError``): each moves on to the chain's next model at once
  instead of waiting out its timeout. Only models that have a next model in every
  chain that holds them are cut: the last model of a chain keeps its calls, since
  nothing would answer them instead.

A call made while its circuit is already open (the chain's last resort) is left
alone. Plain asyncio over the ``Provider`` seam: no grpc, litellm or redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable

from llm_router_server.breaker.breaker import CircuitBreaker
from llm_router_server.breaker.rules import key_of
from llm_router_server.errors import ProviderCutShortError
from llm_router_server.providers.base import Provider
from llm_router_server.types import ChainSpec, Completion, CompletionRequest, ModelSpec


def cuttable(chains: Iterable[ChainSpec]) -> frozenset[str]:
    """The circuits whose calls may be cut short: models with a next model in every chain."""
    chains = list(chains)
    last = {key_of(chain.models[-1]) for chain in chains if chain.models}
    return frozenset({key_of(m) for chain in chains for m in chain.models} - last)


class _Waiting:
    """One call in flight."""

    __slots__ = ("cut", "limit", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.limit: asyncio.Timeout | None = None
        self.cut = ""
        """Why it was cut short ("" while it was not)."""


class WatchedProvider:
    """A ``Provider`` over another, whose calls the breaker watches (see the module)."""

    def __init__(
        self, inner: Provider, breaker: CircuitBreaker, cuttable: Collection[str] = ()
    ) -> None:
        self.inner = inner
        self.breaker = breaker
        self.cuttable = frozenset(cuttable)
        self._waiting: dict[str, set[_Waiting]] = {}
        breaker.on_open.append(self._cut)

    async def start(self) -> None:
        """Nothing: the wrapped provider's start and close stay with its owner."""

    async def aclose(self) -> None:
        """Nothing: the wrapped provider's start and close stay with its owner."""

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        breaker = self.breaker
        key = key_of(model)
        if not breaker.policy.enabled or breaker.is_open(key):
            return await self.inner.complete(model, request)
        loop = asyncio.get_running_loop()
        after = breaker.policy.hang_fraction * model.timeout
        timer = None
        if after < request.timeout:
            timer = loop.call_later(after, breaker.slow_call, model, after)
        try:
            if key not in self.cuttable:
                return await self.inner.complete(model, request)
            return await self._cuttable(key, model, request, loop.time())
        finally:
            if timer is not None:
                timer.cancel()

    async def _cuttable(
        self, key: str, model: ModelSpec, request: CompletionRequest, started: float
    ) -> Completion:
        call = _Waiting(started)
        waiting = self._waiting.setdefault(key, set())
        try:
            async with asyncio.timeout(None) as limit:
                call.limit = limit
                waiting.add(call)
                return await self.inner.complete(model, request)
        except TimeoutError:
            if call.cut:
                raise ProviderCutShortError(call.cut) from None
            raise
        finally:
            waiting.discard(call)

    def _cut(self, key: str) -> None:
        """The circuit ``key`` is open: the calls still waiting on it stop waiting."""
        waiting = self._waiting.get(key)
        if not waiting:
            return
        now = asyncio.get_running_loop().time()
        for call in waiting:
            if not call.cut and call.limit is not None:
                call.cut = f"cut short after {now - call.started:.3g}s: its circuit opened"
                call.limit.reschedule(now)
