"""What a Route call returns, as plain frozen dataclasses read from the generated messages.

Enumerations become short lower-case names (``ATTEMPT_OUTCOME_SUCCESS`` is ``"success"``,
``REASON_CATEGORY_CIRCUIT_OPEN`` is ``"circuit_open"``); a value newer than this client
keeps its number as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from llm_router.v1 import router_pb2


def enum_names(enum: Any, prefix: str) -> dict[int, str]:
    """``{value: short name}`` of a generated enum; the zero value's name is ``""``."""
    names: Mapping[str, int] = dict(enum.items())
    return {v: "" if v == 0 else k.removeprefix(prefix).lower() for k, v in names.items()}


_OUTCOMES = enum_names(router_pb2.AttemptOutcome, "ATTEMPT_OUTCOME_")
_CATEGORIES = enum_names(router_pb2.ReasonCategory, "REASON_CATEGORY_")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Attempt:
    """One model's turn: ``outcome`` is success/rejected/invalid/skipped; ``reason_category``
    is "" on success, else timeout/provider_error/refusal/safety_refusal/invalid_json/
    schema_mismatch/skipped/cancelled/circuit_open/saturated/context_window/authentication/
    rate_limited/validation_timeout."""

    model: str
    outcome: str
    reason_category: str
    reason: str
    latency_ms: float
    usage: Usage | None
    repair: int = 0
    """0 for the model's first answer; n for its n-th repair (asked again with its answer)."""
    cost_usd: float | None = None
    """USD; None when unknown (the model has no price, or no usage was reported)."""


@dataclass(frozen=True)
class RouteResult:
    content: Any
    """The parsed JSON answer when a schema was sent, else the answer text."""
    raw_text: str
    model_used: str
    attempts: tuple[Attempt, ...]
    latency_ms: float
    chain: str
    cost_usd: float | None = None
    """The attempts' costs summed, in USD; None when any is unknown."""
    cost_avoided_usd: float | None = None
    """What the chain's first priced model would have charged for the answer, when a model
    without a price answered (0 when a priced one did); None when unknown."""


def usage_from_proto(message: Any) -> Usage | None:
    """The ``usage`` field of ``message`` (an Attempt or RouteEvent), None when absent."""
    if not message.HasField("usage"):
        return None
    u = message.usage
    return Usage(u.prompt_tokens, u.completion_tokens, u.total_tokens)


def optional(message: Any, name: str) -> float | None:
    """An ``optional double`` field of ``message``; None when absent (unknown)."""
    return float(getattr(message, name)) if message.HasField(name) else None


def attempt_from_proto(a: router_pb2.Attempt) -> Attempt:
    return Attempt(
        model=a.model,
        outcome=_OUTCOMES.get(a.outcome, str(a.outcome)),
        reason_category=_CATEGORIES.get(a.reason_category, str(a.reason_category)),
        reason=a.reason,
        latency_ms=a.latency_ms,
        usage=usage_from_proto(a),
        repair=a.repair,
        cost_usd=optional(a, "cost_usd"),
    )


def result_from_proto(response: router_pb2.RouteResponse) -> RouteResult:
    return RouteResult(
        content=json_format.MessageToDict(response.content)
        if response.HasField("content")
        else None,
        raw_text=response.raw_text,
        model_used=response.model_used,
        attempts=tuple(attempt_from_proto(a) for a in response.attempts),
        latency_ms=response.latency_ms,
        chain=response.chain,
        cost_usd=optional(response, "cost_usd"),
        cost_avoided_usd=optional(response, "cost_avoided_usd"),
    )
