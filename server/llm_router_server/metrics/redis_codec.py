"""What the Redis bus writes to Redis and reads back: key names, the event's JSON payload,
the channel message, and the counters as hash fields. Only the ``redis_*`` modules use it.

The JSON payload (``event_payload``, schema version ``SCHEMA_VERSION``; documented in
``docs/metrics.md`` and ``docs/schemas/route-event.schema.json``) keeps the seed's fields
with the seed's types (``model_used``, integer ``latency_ms``, ``attempts`` with
model/outcome/reason/latency_ms, ``metrics_snapshot``, ``timestamp``) and the fields
version 1 added beside them, and carries the event exactly as the proto has it under
``event``: a ``llm_router.v1.RouteEvent`` in proto3 JSON (proto field names, enum names,
RFC 3339 time), which any protobuf JSON parser reads into the generated type. It never
holds prompt or answer text. On the channel the payload starts with its stream entry id
(``CHANNEL_HEAD``), so that a replica nobody watches can note the id without decoding
the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llm_router_server.metrics.counters import (
    TOKEN_KINDS,
    ChainCounters,
    ModelCounters,
    ModelStats,
    build_stats,
    event_usage,
)
from llm_router_server.metrics.proto_json import event_from_proto_json, proto_event, usage_json
from llm_router_server.types import Attempt, Category, Outcome, RouteEvent, RouteStatus, Usage

SCHEMA_VERSION = 2
"""Version of the payload: 1 (no ``schema_version`` field) had no ``event``; 2 adds it."""

METRICS_CHANNEL = "llm_router_metrics"
"""The pub/sub channel: one message per event, the seed's payload plus ``event_id``."""
STREAM_KEY = f"{METRICS_CHANNEL}:events"
"""The capped stream of recent events, for watchers that resume or catch up."""
COUNTS_KEY = f"{METRICS_CHANNEL}:counts"
"""Hash of cluster-wide counters: ``"<model>|<kind or token kind>" -> n``."""
LATENCY_KEY = f"{METRICS_CHANNEL}:latency"
"""Hash of cluster-wide latency histograms: ``"<model>|<bucket index>" -> n``."""
CHAINS_KEY = f"{METRICS_CHANNEL}:chains"
"""Hash of cluster-wide per-chain counters: ``"<chain>|<kind>" -> n`` (``CHAIN_KINDS``)."""

CHANNEL_HEAD = '{"event_id":"'
"""How a channel message starts: then the stream entry id, ``",`` and the payload's other
fields. The publishing script is given this text; ``channel_event_id`` reads it back."""


def _usage_dict(usage: Usage | None) -> dict[str, int] | None:
    return None if usage is None else usage_json(usage)


def _usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(*(int(raw.get(k, 0)) for k in TOKEN_KINDS))


def event_payload(event: RouteEvent) -> dict[str, Any]:
    """The JSON payload of an event: the seed's fields first, then chain, context, status,
    usage, replica, the schema version, the event as the proto has it, and (when known)
    the event id. No prompt or answer text."""
    payload: dict[str, Any] = {
        "model_used": event.model_used,
        "latency_ms": round(event.latency_ms),
        "attempts": [
            {
                "model": a.model,
                "outcome": a.outcome.value,
                "reason": a.reason or None,
                "latency_ms": round(a.latency_ms),
                "category": a.category.value,
                "usage": _usage_dict(a.usage),
            }
            for a in event.attempts
        ],
        "metrics_snapshot": {m: dict(c) for m, c in event.metrics_snapshot.items()},
        "timestamp": event.timestamp,
        "status": event.status.value,
        "chain": event.chain,
        "context": event.context,
        "usage": _usage_dict(event_usage(event)),
        "replica_id": event.replica_id,
        "schema_version": SCHEMA_VERSION,
        "event": proto_event(event),
    }
    if event.event_id:
        payload["event_id"] = event.event_id
    return payload


def event_json(event: RouteEvent) -> str:
    return json.dumps(event_payload(event), separators=(",", ":"))


def event_from_payload(payload: Mapping[str, Any], event_id: str = "") -> RouteEvent:
    """The event back from its JSON payload (as read from Redis): from ``event`` when the
    payload has it (version 2, full precision), else from the version-1 fields. Raises
    ValueError, KeyError or TypeError on a payload this code did not write."""
    message = payload.get("event")
    if isinstance(message, dict):
        return event_from_proto_json(message, payload, event_id)
    return RouteEvent(
        timestamp=float(payload["timestamp"]),
        status=RouteStatus(payload.get("status", "ok")),
        chain=str(payload.get("chain", "")),
        context=str(payload.get("context", "")),
        model_used=str(payload["model_used"]),
        latency_ms=float(payload["latency_ms"]),
        attempts=tuple(
            Attempt(
                model=str(a["model"]),
                outcome=Outcome(a["outcome"]),
                category=Category(a.get("category", "none")),
                reason=a.get("reason") or "",
                latency_ms=float(a["latency_ms"]),
                usage=_usage_from(a.get("usage")),
            )
            for a in payload["attempts"]
        ),
        metrics_snapshot=dict(payload.get("metrics_snapshot") or {}),
        event_id=event_id or str(payload.get("event_id", "")),
        replica_id=str(payload.get("replica_id", "")),
    )


def channel_event_id(message: str) -> str | None:
    """The event id a channel message starts with; None when it does not start with one."""
    if not message.startswith(CHANNEL_HEAD):
        return None
    end = message.find('"', len(CHANNEL_HEAD))
    return message[len(CHANNEL_HEAD) : end] if end >= 0 else None


def increments(event: RouteEvent) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """What one event adds to the counter hashes: ``({"<model>|<kind>": n}, {"<model>|<bucket>":
    n}, {"<chain>|<kind>": n})``, counted by ``ModelCounters`` and ``ChainCounters``."""
    one = ModelCounters()
    one.record_call(event.attempts, event.cost_avoided_usd)
    counts = {f"{m}|{k}": n for m, by_kind in one.counts.items() for k, n in by_kind.items()}
    latency = {f"{m}|{b}": n for m, by_bucket in one.latency.items() for b, n in by_bucket.items()}
    chain = ChainCounters()
    chain.record_call(event)
    chains = {f"{c}|{k}": n for c, by_kind in chain.counts.items() for k, n in by_kind.items()}
    return counts, latency, chains


def fields_by_name(fields: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """``{"<name>|<kind>": "n"}`` as read from a counter hash -> ``{name: {kind: n}}``."""
    by_name: dict[str, dict[str, int]] = {}
    for field, value in fields.items():
        name, _, kind = field.rpartition("|")
        by_name.setdefault(name, {})[kind] = int(value)
    return by_name


def stats_from_fields(
    counts: Mapping[str, str], latency: Mapping[str, str]
) -> dict[str, ModelStats]:
    """``ModelStats`` per model from the counter hashes as read (fields from ``increments``)."""
    by_kind = fields_by_name(counts)
    by_bucket: dict[str, dict[int, int]] = {}
    for field, value in latency.items():
        model, _, bucket = field.rpartition("|")
        if bucket.isdigit():
            by_bucket.setdefault(model, {})[int(bucket)] = int(value)
    return build_stats(by_kind, by_bucket)
