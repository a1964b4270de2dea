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
    rate_limited."""

    model: str
    outcome: str
    reason_category: str
    reason: str
    latency_ms: float
    usage: Usage | None


@dataclass(frozen=True)
class RouteResult:
    content: Any
    """The parsed JSON answer when a schema was sent, else the answer text."""
    raw_text: str
    model_used: str
    attempts: tuple[Attempt, ...]
    latency_ms: float
    chain: str


def usage_from_proto(message: Any) -> Usage | None:
    """The ``usage`` field of ``message`` (an Attempt or RouteEvent), None when absent."""
    if not message.HasField("usage"):
        return None
    u = message.usage
    return Usage(u.prompt_tokens, u.completion_tokens, u.total_tokens)


def attempt_from_proto(a: router_pb2.Attempt) -> Attempt:
    return Attempt(
        model=a.model,
        outcome=_OUTCOMES.get(a.outcome, str(a.outcome)),
        reason_category=_CATEGORIES.get(a.reason_category, str(a.reason_category)),
        reason=a.reason,
        latency_ms=a.latency_ms,
        usage=usage_from_proto(a),
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
    )
