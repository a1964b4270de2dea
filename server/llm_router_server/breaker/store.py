"""The seam where circuits live: ``BreakerStore``, and ``InMemoryBreakerStore`` for one
process. ``redis_store.py`` beside it shares circuits between replicas.

A store only has to offer an atomic read-modify-write (``update``): the breaker hands it
a pure ``Change`` built from the rules, so every store applies the same rules.
"""

from __future__ import annotations

from typing import Protocol

from llm_router_server.breaker.rules import CLOSED, Change, Circuit
from llm_router_server.errors import LLMRouterError


class BreakerStoreError(LLMRouterError):
    """The breaker's store could not be read or written (e.g. Redis is down)."""


class BreakerStore(Protocol):
    """Where circuits live. ``update`` must be atomic per key across everyone sharing
    the store; both methods raise ``BreakerStoreError`` when the backend fails."""

    async def load(self, key: str) -> Circuit:
        """The circuit for ``key`` (closed when unknown)."""

    async def update(self, key: str, change: Change) -> tuple[Circuit, Circuit]:
        """Replace the circuit by ``change(current)`` atomically; return (old, new)."""

    async def aclose(self) -> None:
        """Release connections."""


class InMemoryBreakerStore:
    """Circuits in this process only (the default, and the fake of the seam)."""

    def __init__(self) -> None:
        self.circuits: dict[str, Circuit] = {}

    async def load(self, key: str) -> Circuit:
        return self.circuits.get(key, CLOSED)

    async def update(self, key: str, change: Change) -> tuple[Circuit, Circuit]:
        old = self.circuits.get(key, CLOSED)
        new = change(old)
        self.circuits[key] = new
        return old, new

    async def aclose(self) -> None:
        return None
