"""One Route call as the chain runs it: its attempts in start order, and the answers
its steps end with. Plain data, the attempt builders, and the error of a call without an
answer (``failure``); the decisions are in ``chain.py``.

Every attempt is recorded through ``Call.put``, which bounds its reason to
``MAX_REASON_CHARS`` and redacts it (a schema mismatch can quote a whole answer): reasons
go to the caller, into the status's trailing metadata, into events and logs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from llm_router_server.errors import (
    AllModelsFailedError,
    ChainFailedError,
    DeadlineExceededError,
    RefusedError,
)
from llm_router_server.routing.observer import AttemptWatch, CallObserver
from llm_router_server.routing.validation.offload import CheckedSchema
from llm_router_server.safe_text import redact, shorten
from llm_router_server.types import (
    NO_HEADERS,
    Attempt,
    Category,
    ChainSpec,
    Deadline,
    ModelSpec,
    Outcome,
    RouteRequest,
    RouteStatus,
)

MAX_REASON_CHARS = 500
"""The longest reason an attempt keeps, in characters."""


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
    schema: CheckedSchema | None
    deadline: Deadline
    tag: str
    observer: CallObserver | None = None
    """Who watches the attempts (tracing); None: nobody (``observer.py``)."""
    slots: list[Attempt | None] = field(default_factory=list)
    watches: dict[int, AttemptWatch] = field(default_factory=dict)
    """The observer's watch of each slot (empty without an observer)."""
    winner: Answer | None = None
    cancel_reason: str = "cancelled by the caller"
    cost_avoided: float | None = None
    """Set when an answer is accepted: see ``RouteResult.cost_avoided_usd``."""
    local_answer: bool = False
    """Set when an answer is accepted: it came from a model without a price."""

    def reserve(self, spec: ModelSpec) -> int:
        """A slot for ``spec``'s attempt, in start order (the observer is told it starts)."""
        slot = len(self.slots)
        self.slots.append(None)
        if self.observer is not None:
            self.watches[slot] = self.observer.attempt(spec, self.chain, slot)
        return slot

    def headers(self, slot: int) -> Mapping[str, str]:
        """What the observer wants sent with this slot's provider request."""
        watch = self.watches.get(slot)
        return NO_HEADERS if watch is None else watch.headers

    def put(self, slot: int, attempt: Attempt, value: object = None, raw_text: str = "") -> Answer:
        """Record the slot's attempt, its reason bounded and redacted (the observer is told
        it ended)."""
        if attempt.reason:
            reason = shorten(redact(attempt.reason), MAX_REASON_CHARS)
            if reason != attempt.reason:
                attempt = replace(attempt, reason=reason)
        self.slots[slot] = attempt
        watch = self.watches.get(slot)
        if watch is not None:
            watch.end(attempt)
        return Answer(attempt, value, raw_text)

    def recorded(self) -> tuple[Attempt, ...]:
        return tuple(a for a in self.slots if a is not None)


def failure(
    chain: ChainSpec,
    won: Answer | None,
    attempts: tuple[Attempt, ...],
    deadline: Deadline,
    latency_ms: float,
) -> tuple[RouteStatus, ChainFailedError]:
    """How a call without an answer ended: its status and the error that carries its attempts."""
    summary = "; ".join(f"{a.model}: {a.outcome.value}: {a.reason}" for a in attempts)
    kind: type[ChainFailedError]
    if won is not None:  # a safety refusal under refusal_policy = "stop"
        status, kind = RouteStatus.REFUSED, RefusedError
        message = (
            f"{won.attempt.model} refused for safety and chain {chain.name!r} has "
            f"refusal_policy 'stop': {won.attempt.reason}"
        )
    elif deadline.expired or any(a.category is Category.SKIPPED for a in attempts):
        status, kind = RouteStatus.DEADLINE_EXCEEDED, DeadlineExceededError
        message = f"deadline exceeded after {len(attempts)} attempt(s): {summary}"
    else:
        status, kind = RouteStatus.ALL_FAILED, AllModelsFailedError
        message = f"all {len(chain.models)} models of chain {chain.name!r} failed: {summary}"
    return status, kind(message, chain=chain.name, attempts=attempts, latency_ms=latency_ms)
