"""Route events and circuit changes in proto3 JSON, written without the proto classes.

The Redis payload carries each event this way (``redis_codec``: the ``event`` field) and
the live page receives events and circuit changes this way (``live.py``): the
``llm_router.v1`` messages ``RouteEvent`` and ``CircuitChange`` with the proto's field
names, enum values by name, a ``Timestamp`` as RFC 3339 (UTC, microseconds), and every
scalar field written (int64 token counts as JSON numbers, which every proto3 JSON
parser accepts). A test parses this output with protobuf's own ``json_format`` into the
generated classes and compares it with the servicer's encoding, so the two cannot drift.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

from llm_router_server.breaker.rules import State, Transition
from llm_router_server.metrics.counters import TOKEN_KINDS, event_usage
from llm_router_server.pricing.price import call_cost
from llm_router_server.types import Attempt, Category, Outcome, RouteEvent, RouteStatus, Usage


def usage_json(usage: Usage) -> dict[str, int]:
    return {k: getattr(usage, k) for k in TOKEN_KINDS}


def _usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(*(int(raw.get(k, 0)) for k in TOKEN_KINDS))


@functools.lru_cache(maxsize=4)
def _utc_second(whole: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


def rfc3339(timestamp: float) -> str:
    """Unix seconds as proto3 JSON writes a ``google.protobuf.Timestamp`` (UTC, micros)."""
    whole = int(timestamp)
    micros = round((timestamp - whole) * 1e6)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return f"{_utc_second(whole)}.{micros:06d}Z"


def _attempt(a: Attempt) -> dict[str, Any]:
    attempt: dict[str, Any] = {
        "model": a.model,
        "outcome": f"ATTEMPT_OUTCOME_{a.outcome.name}",
        "reason_category": (
            "REASON_CATEGORY_UNSPECIFIED"
            if a.category is Category.NONE
            else f"REASON_CATEGORY_{a.category.name}"
        ),
        "reason": a.reason,
        "latency_ms": a.latency_ms,
        "repair": a.repair,
    }
    if a.usage is not None:
        attempt["usage"] = usage_json(a.usage)
    if a.cost_usd is not None:  # optional: absent when unknown
        attempt["cost_usd"] = a.cost_usd
    return attempt


def proto_event(event: RouteEvent) -> dict[str, Any]:
    """The event as proto3 JSON of ``llm_router.v1.RouteEvent`` (proto field names, enum
    names, every scalar written; ``usage`` and the optional costs only when known)."""
    message: dict[str, Any] = {
        "time": rfc3339(event.timestamp),
        "status": f"ROUTE_STATUS_{event.status.name}",
        "chain": event.chain,
        "context": event.context,
        "model_used": event.model_used,
        "latency_ms": event.latency_ms,
        "attempts": [_attempt(a) for a in event.attempts],
        "event_id": event.event_id,
        "replica_id": event.replica_id,
        "local_answer": event.local_answer,
    }
    usage = event_usage(event)
    if usage is not None:
        message["usage"] = usage_json(usage)
    cost = call_cost(event.attempts)
    if cost is not None:  # optional: absent when unknown
        message["cost_usd"] = cost
    if event.cost_avoided_usd is not None:
        message["cost_avoided_usd"] = event.cost_avoided_usd
    return message


_OUTCOME_NAMES = {f"ATTEMPT_OUTCOME_{o.name}": o for o in Outcome}
_CATEGORY_NAMES = {f"REASON_CATEGORY_{c.name}": c for c in Category}
_CATEGORY_NAMES["REASON_CATEGORY_UNSPECIFIED"] = Category.NONE
_STATUS_NAMES = {f"ROUTE_STATUS_{s.name}": s for s in RouteStatus}


def event_from_proto_json(
    message: Mapping[str, Any], payload: Mapping[str, Any], event_id: str = ""
) -> RouteEvent:
    """The event back from ``proto_event``'s output; ``payload`` (the Redis payload around
    it) gives the Unix ``timestamp`` and the seed's ``metrics_snapshot``. Raises
    ValueError, KeyError or TypeError on anything else."""
    return RouteEvent(
        timestamp=float(payload["timestamp"]),
        status=_STATUS_NAMES[message["status"]],
        chain=str(message["chain"]),
        context=str(message["context"]),
        model_used=str(message["model_used"]),
        latency_ms=float(message["latency_ms"]),
        attempts=tuple(
            Attempt(
                model=str(a["model"]),
                outcome=_OUTCOME_NAMES[a["outcome"]],
                category=_CATEGORY_NAMES[a["reason_category"]],
                reason=str(a["reason"]),
                latency_ms=float(a["latency_ms"]),
                usage=_usage_from(a.get("usage")),
                repair=int(a.get("repair", 0)),
                cost_usd=_float_or_none(a.get("cost_usd")),
            )
            for a in message["attempts"]
        ),
        metrics_snapshot=dict(payload.get("metrics_snapshot") or {}),
        event_id=event_id or str(payload.get("event_id", "")) or str(message["event_id"]),
        replica_id=str(message["replica_id"]),
        cost_avoided_usd=_float_or_none(message.get("cost_avoided_usd")),
        local_answer=bool(message.get("local_answer", False)),
    )


def _float_or_none(raw: Any) -> float | None:
    return None if raw is None else float(raw)


def circuit_state(state: State | None) -> str:
    """A ``CircuitState`` by name (UNSPECIFIED for None: nothing known)."""
    return "CIRCUIT_STATE_UNSPECIFIED" if state is None else f"CIRCUIT_STATE_{state.name}"


def circuit_change(change: Transition, replica_id: str) -> dict[str, Any]:
    """A ``CircuitChange``."""
    return {
        "time": rfc3339(change.time),
        "model": change.model,
        "api_base": change.api_base,
        "from_state": circuit_state(change.old),
        "to_state": circuit_state(change.new),
        "reason": change.reason,
        "cool_down_seconds": change.cool_down,
        "replica_id": replica_id,
    }
