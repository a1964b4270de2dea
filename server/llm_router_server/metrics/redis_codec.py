"""What the Redis bus writes to Redis and reads back: key names, the event's JSON payload,
the channel message, and the counters as hash fields. Only the ``redis_*`` modules use it.

The JSON payload (``event_payload``, schema version ``SCHEMA_VERSION``; documented in
``docs/metrics.md`` and ``docs/schemas/route-event.schema.json``) keeps the seed's fields
with the seed's types (``model_used``, integer ``latency_ms``, ``attempts`` with
model/outcome/reason/latency_ms, ``metrics_snapshot``, ``timestamp``) and the fields
version 1 added beside them, and carries the event exactly as the proto has it under
``event``: a ``llm_router.v1.RouteEvent`` in proto3 JSON (proto field names, enum names,
RFC 3339 time), which any protobuf JSON parser reads into the generated type. It never
holds prompt or answer text. The publisher writes it with ``event_json``: the same text
as ``json.dumps(event_payload(event), separators=(",", ":"))``, written by hand for speed
(a test holds the two equal). On the channel the payload starts with its stream entry id
(``CHANNEL_HEAD``), so that a replica nobody watches can note the id without decoding
the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii as _str
from typing import Any

from llm_router_server.metrics.counters import (
    TOKEN_KINDS,
    ChainCounters,
    ModelCounters,
    ModelStats,
    build_stats,
    event_usage,
)
from llm_router_server.metrics.proto_json import (
    event_from_proto_json,
    proto_event,
    rfc3339,
    usage_json,
)
from llm_router_server.pricing.price import call_cost
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
BATCH_CHANNEL = f"{METRICS_CHANNEL}:batches"
"""The replicas' own channel: one message per published batch, the batch's channel
messages (as on ``METRICS_CHANNEL``) joined by newlines (JSON text holds none)."""
APPLIED_KEY_PREFIX = f"{METRICS_CHANNEL}:applied:"
"""``<prefix><publisher id>`` holds the sequence number of the last batch that publisher
had applied, so that a batch sent again (its reply was lost) is applied once."""
CHAINS_KEY = f"{METRICS_CHANNEL}:chains"
"""Hash of cluster-wide per-chain counters: ``"<chain>|<kind>" -> n`` (``CHAIN_KINDS``)."""

CHANNEL_HEAD = '{"event_id":"'
"""How a channel message starts: then the stream entry id, ``",`` and the payload's other
fields. The publishing script is given this text; ``channel_event_id`` reads it back."""


def _usage_dict(usage: Usage | None) -> dict[str, int] | None:
    return None if usage is None else usage_json(usage)


def _usage_text(usage: Usage | None) -> str:
    if usage is None:
        return "null"
    return (
        f'{{"prompt_tokens":{usage.prompt_tokens},"completion_tokens":{usage.completion_tokens},'
        f'"total_tokens":{usage.total_tokens}}}'
    )


def _usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(*(int(raw.get(k, 0)) for k in TOKEN_KINDS))


def event_payload(event: RouteEvent) -> dict[str, Any]:
    """The JSON payload of an event: the seed's fields first, then chain, context, status,
    usage, replica, the schema version, the event as the proto has it, and (when known)
    the event id. No prompt or answer text. (The reference for ``event_json``.)"""
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


# -- the same payload written by hand (the publisher's hot path) ----------------------------
# Numbers as ``json.dumps`` writes them (``repr`` of a finite int or float), strings with
# the ``json`` module's own escaping, enum names looked up once.

_OUTCOME = {o: f'"ATTEMPT_OUTCOME_{o.name}"' for o in Outcome}
_CATEGORY = {c: f'"REASON_CATEGORY_{c.name}"' for c in Category}
_CATEGORY[Category.NONE] = '"REASON_CATEGORY_UNSPECIFIED"'
_STATUS = {s: f'"ROUTE_STATUS_{s.name}"' for s in RouteStatus}


def _attempt_seed(a: Attempt) -> str:
    reason = _str(a.reason) if a.reason else "null"
    return (
        f'{{"model":{_str(a.model)},"outcome":"{a.outcome.value}","reason":{reason},'
        f'"latency_ms":{round(a.latency_ms)},"category":"{a.category.value}",'
        f'"usage":{_usage_text(a.usage)}}}'
    )


def _attempt_proto(a: Attempt) -> str:
    usage = "" if a.usage is None else f',"usage":{_usage_text(a.usage)}'
    cost = "" if a.cost_usd is None else f',"cost_usd":{a.cost_usd!r}'
    return (
        f'{{"model":{_str(a.model)},"outcome":{_OUTCOME[a.outcome]},'
        f'"reason_category":{_CATEGORY[a.category]},"reason":{_str(a.reason)},'
        f'"latency_ms":{a.latency_ms!r},"repair":{a.repair!r}{usage}{cost}}}'
    )


def _counts_text(counts: Mapping[str, int]) -> str:
    return ",".join(f"{_str(kind)}:{n!r}" for kind, n in counts.items())


def event_json(event: RouteEvent, replica_id: str | None = None) -> str:
    """``event_payload(event)`` as compact JSON text, exactly what ``json.dumps(...,
    separators=(",", ":"))`` writes, in one pass over the event. ``replica_id``, when
    given, is written instead of the event's (in both places the payload holds it)."""
    replica = _str(event.replica_id if replica_id is None else replica_id)
    usage = event_usage(event)
    usage_text = _usage_text(usage)
    optional = "" if usage is None else f',"usage":{usage_text}'
    cost = call_cost(event.attempts)
    if cost is not None:
        optional += f',"cost_usd":{cost!r}'
    if event.cost_avoided_usd is not None:
        optional += f',"cost_avoided_usd":{event.cost_avoided_usd!r}'
    snapshot = ",".join(
        f"{_str(model)}:{{{_counts_text(counts)}}}"
        for model, counts in event.metrics_snapshot.items()
    )
    chain, context, model_used = _str(event.chain), _str(event.context), _str(event.model_used)
    proto = (
        f'{{"time":"{rfc3339(event.timestamp)}","status":{_STATUS[event.status]},'
        f'"chain":{chain},"context":{context},"model_used":{model_used},'
        f'"latency_ms":{event.latency_ms!r},'
        f'"attempts":[{",".join(_attempt_proto(a) for a in event.attempts)}],'
        f'"event_id":{_str(event.event_id)},"replica_id":{replica},'
        f'"local_answer":{"true" if event.local_answer else "false"}{optional}}}'
    )
    text = (
        f'{{"model_used":{model_used},"latency_ms":{round(event.latency_ms)},'
        f'"attempts":[{",".join(_attempt_seed(a) for a in event.attempts)}],'
        f'"metrics_snapshot":{{{snapshot}}},"timestamp":{event.timestamp!r},'
        f'"status":"{event.status.value}","chain":{chain},"context":{context},'
        f'"usage":{usage_text},"replica_id":{replica},"schema_version":{SCHEMA_VERSION},'
        f'"event":{proto}'
    )
    if event.event_id:
        text += f',"event_id":{_str(event.event_id)}'
    return text + "}"


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


def increments(
    events: Iterable[RouteEvent],
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """What events add to the counter hashes: ``({"<model>|<kind>": n}, {"<model>|<bucket>":
    n}, {"<chain>|<kind>": n})``, counted by ``ModelCounters`` and ``ChainCounters`` and
    summed over the events."""
    models, chains = ModelCounters(), ChainCounters()
    for event in events:
        models.record_call(event.attempts, event.cost_avoided_usd)
        chains.record_call(event)
    counts = {f"{m}|{k}": n for m, by_kind in models.counts.items() for k, n in by_kind.items()}
    latency = {
        f"{m}|{b}": n for m, by_bucket in models.latency.items() for b, n in by_bucket.items()
    }
    by_chain = {f"{c}|{k}": n for c, by_kind in chains.counts.items() for k, n in by_kind.items()}
    return counts, latency, by_chain


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
