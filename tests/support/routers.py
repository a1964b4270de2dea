"""Routers built in-process over a ``Provider`` (usually the ``ScriptedProvider``): the chain
alone, with no gRPC and no HTTP, and a hand-driven clock for the circuit breaker."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from llm_router_server.breaker.breaker import CircuitBreaker
from llm_router_server.breaker.rules import Transition
from llm_router_server.breaker.store import BreakerStore
from llm_router_server.config import BreakerPolicy
from llm_router_server.errors import ProviderConnectionError
from llm_router_server.metrics.memory import InMemoryMetricsBus
from llm_router_server.providers.base import Provider
from llm_router_server.routing.chain import Router
from llm_router_server.routing.judging import DEFAULT_REFUSAL_PATTERNS
from llm_router_server.types import ChainSpec, Completion, Message, ModelSpec, RouteRequest
from tests.support.scripted_provider import ScriptedProvider, Step

LOCAL, HAIKU = ModelSpec("local", timeout=1.0), ModelSpec("haiku", timeout=1.0)
DOWN = ProviderConnectionError("connection refused")
OK = Completion("fine")


def ask(text: str = "What now?", schema: str = "", **fields: str) -> RouteRequest:
    """A request of one user message."""
    return RouteRequest(messages=(Message("user", text),), schema=schema, **fields)


def build_router(
    provider: Provider,
    models: Sequence[ModelSpec],
    *,
    chains: Mapping[str, Sequence[ModelSpec]] | None = None,
    hedge_after_ms: float = 0.0,
    refusal_policy: str = "fall_through",
    breaker: CircuitBreaker | None = None,
) -> Router:
    """A ``Router`` whose chain ``default`` is ``models`` (hedged and with the refusal policy
    given), plus the named ``chains``; an in-process metrics bus, the default refusal
    patterns, and ``breaker`` (the router's default one when None)."""
    specs = {"default": ChainSpec("default", tuple(models), hedge_after_ms, refusal_policy)}
    for name, chain_models in (chains or {}).items():
        specs[name] = ChainSpec(name, tuple(chain_models))
    return Router(
        specs,
        provider,
        InMemoryMetricsBus(),
        refusal_patterns=DEFAULT_REFUSAL_PATTERNS,
        breaker=breaker,
    )


class Clock:
    """A clock for the circuit breaker that moves only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def scripted_router(
    script: dict[str, list[Step]],
    *,
    policy: BreakerPolicy | None = None,
    models: tuple[ModelSpec, ...] = (LOCAL, HAIKU),
    hedge_after_ms: float = 0.0,
    refusal_policy: str = "fall_through",
    store: BreakerStore | None = None,
    listener: Callable[[Transition], None] | None = None,
) -> tuple[Router, ScriptedProvider, Clock]:
    """A router over a ``ScriptedProvider`` playing ``script`` (then answering ``OK``), with a
    circuit breaker on a hand-driven ``Clock`` (by default: open after 3 failures, for 10 s)."""
    clock = Clock()
    provider = ScriptedProvider(script, default=OK)
    breaker = CircuitBreaker(
        store,
        policy or BreakerPolicy(failure_threshold=3, cool_down_seconds=10),
        clock=clock,
        listener=listener,
    )
    router = build_router(
        provider,
        models,
        hedge_after_ms=hedge_after_ms,
        refusal_policy=refusal_policy,
        breaker=breaker,
    )
    return router, provider, clock


def called(provider: ScriptedProvider) -> list[str]:
    """The models ``provider`` was asked, in order."""
    return [model for model, _ in provider.calls]
