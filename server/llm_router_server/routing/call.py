"""One Route call as the chain runs it: its attempts in start order, and the answers
its steps end with. Plain data and the attempt builders; the decisions are in ``chain.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llm_router_server.routing.judging import Schema
from llm_router_server.types import (
    Attempt,
    Category,
    ChainSpec,
    Deadline,
    ModelSpec,
    Outcome,
    RouteRequest,
)


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded to the microsecond."""
    return round(seconds * 1000, 3)


def rejected(
    spec: ModelSpec,
    category: Category,
    reason: str,
    started: float,
    repair: int = 0,
    cost_usd: float | None = None,
) -> Attempt:
    """A model's attempt that ended without an accepted answer."""
    return Attempt(
        model=spec.model,
        outcome=Outcome.REJECTED,
        category=category,
        reason=reason,
        latency_ms=ms(time.monotonic() - started),
        repair=repair,
        cost_usd=cost_usd,
    )


def skipped(spec: ModelSpec, reason: str, category: Category = Category.SKIPPED) -> Attempt:
    """A model that was not called (deadline, open circuit, saturated): it cost nothing."""
    return Attempt(
        model=spec.model,
        outcome=Outcome.SKIPPED,
        category=category,
        reason=reason,
        latency_ms=0.0,
        cost_usd=0.0,
    )


@dataclass
class Answer:
    """What one step ended with."""

    attempt: Attempt
    value: object = None
    raw_text: str = ""
    stop: bool = False
    """A safety refusal that ends the call (refusal_policy = "stop")."""
    spec: ModelSpec | None = None
    """The model that answered (None for an attempt that was not started)."""
    truncated: bool = False
    """The answer was cut at the token limit (it is not repaired)."""


def ends_call(answer: Answer) -> bool:
    """Whether this answer ends the call: a success, or a refusal that stops it."""
    return answer.attempt.outcome is Outcome.SUCCESS or answer.stop


@dataclass
class Call:
    """One Route call's shared state: its request and its attempts, in start order."""

    request: RouteRequest
    chain: ChainSpec
    schema: Schema | None
    deadline: Deadline
    tag: str
    slots: list[Attempt | None] = field(default_factory=list)
    winner: Answer | None = None
    cancel_reason: str = "cancelled by the caller"
    cost_avoided: float | None = None
    """Set when an answer is accepted: see ``RouteResult.cost_avoided_usd``."""
    local_answer: bool = False
    """Set when an answer is accepted: it came from a model without a price."""

    def reserve(self) -> int:
        self.slots.append(None)
        return len(self.slots) - 1

    def put(self, slot: int, attempt: Attempt, value: object = None, raw_text: str = "") -> Answer:
        self.slots[slot] = attempt
        return Answer(attempt, value, raw_text)

    def recorded(self) -> tuple[Attempt, ...]:
        return tuple(a for a in self.slots if a is not None)
