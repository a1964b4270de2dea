"""What the Redis bus writes to Redis and reads back: key names, the event's JSON payload,
the channel message, and the counters as hash fields. Only the ``redis_*`` modules use it.

The JSON payload (``event_json``) keeps the seed's fields (``model_used``,
``latency_ms``, ``attempts`` with model/outcome/reason/latency_ms, ``metrics_snapshot``,
``timestamp``) and adds the rest. It never holds prompt or answer text. On the channel
the payload starts with its stream entry id (``CHANNEL_HEAD``), so that a replica nobody
watches can note the id without decoding the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii as _str
from typing import Any

from llm_router_server.metrics.counters import (
    TOKEN_KINDS,
    ModelCounters,
    ModelStats,
    build_stats,
    event_usage,
)
from llm_router_server.types import Attempt, Category, Outcome, RouteEvent, RouteStatus, Usage

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

CHANNEL_HEAD = '{"event_id":"'
"""How a channel message starts: then the stream entry id, ``",`` and the payload's other
fields. The publishing script is given this text; ``channel_event_id`` reads it back."""


def _usage_json(usage: Usage | None) -> str:
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


def _attempt_json(a: Attempt) -> str:
    reason = _str(a.reason) if a.reason else "null"
    return (
        f'{{"model":{_str(a.model)},"outcome":"{a.outcome.value}","reason":{reason},'
        f'"latency_ms":{round(a.latency_ms)},"category":"{a.category.value}",'
        f'"usage":{_usage_json(a.usage)}}}'
    )


def _counts_json(counts: Mapping[str, int]) -> str:
    return ",".join(f"{_str(kind)}:{int(n)}" for kind, n in counts.items())


def event_json(event: RouteEvent, replica_id: str | None = None) -> str:
    """The JSON payload of an event, compact, in this order: the seed's fields
    (``model_used``, ``latency_ms`` as an int, ``attempts`` with model, outcome, reason
    (null when none), int ``latency_ms``, category and usage, ``metrics_snapshot``,
    ``timestamp`` as a float), then ``status``, ``chain``, ``context``, ``usage`` (summed;
    null when no attempt reported any), ``replica_id`` and (when known) ``event_id``. No
    prompt or answer text. ``replica_id``, when given, is written instead of the event's.
    Written by hand, for speed, with the ``json`` module's own
    string escaping: the text is what ``json.dumps(..., separators=(",", ":"))`` writes."""
    attempts = ",".join(_attempt_json(a) for a in event.attempts)
    snapshot = ",".join(
        f"{_str(model)}:{{{_counts_json(counts)}}}"
        for model, counts in event.metrics_snapshot.items()
    )
    text = (
        f'{{"model_used":{_str(event.model_used)},"latency_ms":{round(event.latency_ms)},'
        f'"attempts":[{attempts}],"metrics_snapshot":{{{snapshot}}},'
        f'"timestamp":{float(event.timestamp)!r},"status":"{event.status.value}",'
        f'"chain":{_str(event.chain)},"context":{_str(event.context)},'
        f'"usage":{_usage_json(event_usage(event))},'
        f'"replica_id":{_str(event.replica_id if replica_id is None else replica_id)}'
    )
    if event.event_id:
        text += f',"event_id":{_str(event.event_id)}'
    return text + "}"


def event_from_payload(payload: Mapping[str, Any], event_id: str = "") -> RouteEvent:
    """The event back from its JSON payload (as read from Redis). Raises ValueError,
    KeyError or TypeError on a payload this code did not write."""
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


def increments(events: Iterable[RouteEvent]) -> tuple[dict[str, int], dict[str, int]]:
    """What events add to the counter hashes: ``({"<model>|<kind>": n}, {"<model>|<bucket>":
    n})``, counted by ``ModelCounters`` and summed over the events."""
    counters = ModelCounters()
    for event in events:
        counters.record_call(event.attempts)
    counts = {f"{m}|{k}": n for m, by_kind in counters.counts.items() for k, n in by_kind.items()}
    latency = {
        f"{m}|{b}": n for m, by_bucket in counters.latency.items() for b, n in by_bucket.items()
    }
    return counts, latency


def stats_from_fields(
    counts: Mapping[str, str], latency: Mapping[str, str]
) -> dict[str, ModelStats]:
    """``ModelStats`` per model from the counter hashes as read (fields from ``increments``)."""
    by_kind: dict[str, dict[str, int]] = {}
    for field, value in counts.items():
        model, _, kind = field.rpartition("|")
        by_kind.setdefault(model, {})[kind] = int(value)
    by_bucket: dict[str, dict[int, int]] = {}
    for field, value in latency.items():
        model, _, bucket = field.rpartition("|")
        if bucket.isdigit():
            by_bucket.setdefault(model, {})[int(bucket)] = int(value)
    return build_stats(by_kind, by_bucket)
