"""Per-model concurrency limits: a model that already serves ``max_concurrency`` calls is
skipped (the chain goes on to the next model) instead of queueing behind them.

A local GPU serves few calls at once; waiting in its queue would spend the caller's
deadline on nothing. The limit is per process (per replica).
"""

from __future__ import annotations

from collections import Counter

from llm_router_server.types import ModelSpec


class ConcurrencyLimiter:
    """Counts calls in flight per model and refuses one more than its ``max_concurrency``."""

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()
        self.saturated: Counter[str] = Counter()
        """How often each model was skipped because it was full."""

    def try_acquire(self, spec: ModelSpec) -> bool:
        """Take a slot for one call to ``spec``; False (and counted) when it is full."""
        if spec.max_concurrency > 0 and self.in_flight[_key(spec)] >= spec.max_concurrency:
            self.saturated[_key(spec)] += 1
            return False
        self.in_flight[_key(spec)] += 1
        return True

    def release(self, spec: ModelSpec) -> None:
        self.in_flight[_key(spec)] -= 1
        if self.in_flight[_key(spec)] <= 0:
            del self.in_flight[_key(spec)]


def _key(spec: ModelSpec) -> str:
    return f"{spec.model}|{spec.api_base or ''}"
