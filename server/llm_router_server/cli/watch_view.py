"""``llm-router watch``: a live terminal view over WatchMetrics, or raw JSON lines.

The view shows, per model, success/fallback/error counts, the fallback rate,
latency p50/p95, tokens, repairs and money (from the latest snapshot, with the
counts moved on by each event in between); per chain, calls, the local share,
cost and cost avoided (likewise); and the last events scrolling, with their
cost. ``--json`` prints each stream message as one JSON object per line
(``{"snapshot": ...}`` or ``{"event": ...}`` or ``{"circuit": ...}``, proto field
names; a batch's events one line each) for piping. It asks the server for events in
batches, at most one message of them per ``BATCH_INTERVAL`` seconds (the view redraws
as often), so that a busy replica sends it a few messages a second.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf import json_format
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from llm_router.v1 import router_pb2
from llm_router_server.cli.money import usd
from llm_router_server.metrics.counters import COUNT_KINDS, attempt_kinds
from llm_router_server.safe_text import escape
from llm_router_server.types import Outcome

_STATUS = {v: k.removeprefix("ROUTE_STATUS_").lower() for k, v in router_pb2.RouteStatus.items()}
_OUTCOME = {
    v: k.removeprefix("ATTEMPT_OUTCOME_").lower() for k, v in router_pb2.AttemptOutcome.items()
}
BATCH_INTERVAL = 0.25
"""Seconds between two messages of events from the server (``batch_interval``)."""
_OUTCOME_OF = {router_pb2.AttemptOutcome.Value(f"ATTEMPT_OUTCOME_{o.name}"): o for o in Outcome}


@dataclass
class ViewState:
    """What the view shows, updated message by message."""

    snapshot: router_pb2.MetricsSnapshot | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    events: deque[router_pb2.RouteEvent] = field(default_factory=lambda: deque(maxlen=15))
    missed: int = 0
    circuits: dict[str, str] = field(default_factory=dict)
    """Per model: its circuit breaker's state, from snapshots and CircuitChange messages."""
    chains: dict[str, router_pb2.ChainCounters] = field(default_factory=dict)
    """Per chain: its counters, from snapshots, moved on by each event."""

    def update(self, message: router_pb2.WatchMetricsResponse) -> None:
        self.missed += message.missed_events
        if message.WhichOneof("kind") == "snapshot":
            self.snapshot = message.snapshot
            self.counts = {
                m.model: {"success": m.success, "fallback": m.fallback, "error": m.error}
                for m in message.snapshot.models
            }
            self.circuits = {
                m.model: _circuit(m.circuit) for m in message.snapshot.models if m.circuit
            }
            self.chains = {c.chain: c for c in message.snapshot.chains}
        elif message.WhichOneof("kind") == "circuit":
            self.circuits[message.circuit.model] = _circuit(message.circuit.to_state)
        elif message.WhichOneof("kind") == "event":
            self.events.append(message.event)
            attempts = message.event.attempts
            # An outcome this client does not know counts as a rejection.
            outcomes = [_OUTCOME_OF.get(a.outcome, Outcome.REJECTED) for a in attempts]
            for attempt, kind in zip(attempts, attempt_kinds(outcomes), strict=True):
                if kind is not None:
                    counts = self.counts.setdefault(attempt.model, dict.fromkeys(COUNT_KINDS, 0))
                    counts[kind] += 1
            self._count_chain(message.event)

    def _count_chain(self, event: router_pb2.RouteEvent) -> None:
        """Move a chain's counters on by one event (as ``ChainCounters.record_call``)."""
        old = self.chains.get(event.chain) or router_pb2.ChainCounters(chain=event.chain)
        chain = router_pb2.ChainCounters()
        chain.CopyFrom(old)
        chain.calls += 1
        if event.status == router_pb2.ROUTE_STATUS_OK:
            chain.answered += 1
            chain.local += event.local_answer
        if event.HasField("cost_usd"):
            chain.cost_usd += event.cost_usd
        else:
            chain.cost_unknown += 1
        chain.cost_avoided_usd += event.cost_avoided_usd
        self.chains[event.chain] = chain


def _circuit(state: router_pb2.CircuitState.ValueType) -> str:
    return router_pb2.CircuitState.Name(state).removeprefix("CIRCUIT_STATE_").lower()


def render(state: ViewState, target: str) -> RenderableType:
    snapshot = state.snapshot
    scope = "cluster-wide" if snapshot is not None and snapshot.cluster_wide else "this replica"
    replica = snapshot.replica_id if snapshot is not None else "?"
    header = Text(f"llm-router {target}  replica {replica}  counters: {scope}", style="bold")
    if state.missed:
        header.append(f"  missed {state.missed} event(s)", style="bold red")
    latency = {m.model: m for m in snapshot.models} if snapshot is not None else {}
    models = Table(title="models", expand=True)
    for column in ("model", "success", "fallback", "error", "fallback rate", "p50 ms", "p95 ms"):
        models.add_column(column, justify="left" if column == "model" else "right")
    for column in ("tokens", "repairs", "cost", "avoided"):
        models.add_column(column, justify="right")
    models.add_column("circuit")
    for model, c in sorted(state.counts.items()):
        tried = sum(c.values())
        s = latency.get(model)
        models.add_row(
            model,
            str(c["success"]),
            str(c["fallback"]),
            str(c["error"]),
            f"{c['fallback'] / tried:.0%}" if tried else "-",
            f"{s.latency_p50_ms:.0f}" if s else "-",
            f"{s.latency_p95_ms:.0f}" if s else "-",
            str(s.total_tokens) if s else "-",
            f"{s.repair_successes}/{s.repairs}" if s and s.repairs else "-",
            _cost(s.cost_usd, s.cost_unknown) if s else "-",
            usd(s.cost_avoided_usd) if s and s.cost_avoided_usd else "-",
            state.circuits.get(model, "-"),
        )
    chains = Table(title="chains", expand=True)
    for column in ("chain", "calls", "answered", "local share", "cost", "avoided"):
        chains.add_column(column, justify="left" if column == "chain" else "right")
    for name, chain in sorted(state.chains.items()):
        chains.add_row(
            name,
            str(chain.calls),
            str(chain.answered),
            f"{chain.local / chain.answered:.0%}" if chain.answered else "-",
            _cost(chain.cost_usd, chain.cost_unknown),
            usd(chain.cost_avoided_usd),
        )
    events = Table(title="last events", expand=True)
    for column in ("time", "replica", "chain", "context", "status", "model", "ms", "cost"):
        events.add_column(column, justify="right" if column in ("ms", "cost") else "left")
    events.add_column("attempts")
    for e in reversed(state.events):
        events.add_row(
            e.time.ToDatetime().strftime("%H:%M:%S"),
            e.replica_id,
            e.chain,
            Text(escape(e.context)),  # the caller's label: no markup, no control characters
            _STATUS.get(e.status, "?"),
            e.model_used,
            f"{e.latency_ms:.0f}",
            usd(e.cost_usd if e.HasField("cost_usd") else None),
            " > ".join(_attempt(a) for a in e.attempts),
        )
    return Group(header, models, chains, events)


def _attempt(a: router_pb2.Attempt) -> str:
    name = a.model.rsplit("/", 1)[-1]
    return f"{name}{f' repair {a.repair}' if a.repair else ''}:{_OUTCOME[a.outcome]}"


def _cost(known_usd: float, unknown: int) -> str:
    """The known cost, and how many attempts or calls it leaves out as unknown."""
    return usd(known_usd) + (f" +{unknown} unknown" if unknown else "")


def request_from_args(args: argparse.Namespace) -> router_pb2.WatchMetricsRequest:
    return router_pb2.WatchMetricsRequest(
        snapshot_interval_seconds=args.interval,
        chains=args.chain,
        models=args.model,
        contexts=args.context,
        resume_after_event_id=args.resume_after,
    )


def _json_lines(messages: Iterable[router_pb2.WatchMetricsResponse], count: int | None) -> None:
    events = 0
    for message in messages:
        print(
            json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True),
            flush=True,
        )
        events += message.WhichOneof("kind") == "event"
        if count is not None and events >= count:
            return


def _live(
    messages: Iterable[router_pb2.WatchMetricsResponse], target: str, count: int | None
) -> None:
    state = ViewState()
    events = 0
    with Live(render(state, target), refresh_per_second=4, screen=False) as live:
        for message in messages:
            state.update(message)
            live.update(render(state, target))
            events += message.WhichOneof("kind") == "event"
            if count is not None and events >= count:
                return


def run(args: argparse.Namespace) -> int:
    """Stream until interrupted (or ``--count`` events); 1 when the stream fails. A stream
    that breaks after it was open is reopened where it left off (``RouterClient.watch``)."""
    from llm_router import RouterClient, RouterError
    from llm_router.connection import from_arguments

    try:
        client = RouterClient(from_arguments(args))
    except (ValueError, OSError) as exc:
        print(f"llm-router watch: {exc}", file=sys.stderr)
        return 2
    target = client.connection.target
    with client:
        watched = client.watch(
            interval=args.interval,
            chains=args.chain,
            models=args.model,
            contexts=args.context,
            resume_after=args.resume_after,
            batch_interval=BATCH_INTERVAL,
        )
        messages = (m.raw for m in watched)  # a batch's events one by one
        try:
            if args.json:
                _json_lines(messages, args.count)
            else:
                _live(messages, target, args.count)
        except RouterError as exc:
            print(f"{target}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            watched.close()
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from llm_router.connection import add_arguments

    watch = sub.add_parser(
        "watch",
        help="live view of the server's metrics (WatchMetrics)",
        description="Live per-model counters and the last events; --json for raw lines.",
    )
    watch.add_argument("--json", action="store_true", help="print each message as a JSON line")
    watch.add_argument(
        "--interval", type=float, default=5.0, help="seconds between snapshots (default 5)"
    )
    watch.add_argument("--chain", action="append", default=[], help="only this chain (repeat)")
    watch.add_argument("--model", action="append", default=[], help="only this model (repeat)")
    watch.add_argument(
        "--context", action="append", default=[], help="only this context label (repeat)"
    )
    watch.add_argument(
        "--resume-after", default="", help="event id: first replay the events after it"
    )
    watch.add_argument("--count", type=int, default=None, help="exit after this many events")
    add_arguments(watch)
    watch.set_defaults(func=run)
