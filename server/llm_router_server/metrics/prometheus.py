"""The Prometheus counters: this replica's Route calls, attempts, gRPC calls, metrics bus
and process.

Off unless ``metrics.prometheus_listen`` is set; ``web.py`` serves the registry at
``/metrics`` on that port. Counts come from this process's own events
(``MetricsBus.observe``), never from other replicas', so that Prometheus can sum
replicas without counting a call twice. Each ``App`` has its own registry. The
caller's ``context`` label is not a Prometheus label (unbounded cardinality).

``locality`` (``local`` or ``cloud``, see ``providers/identity.py``) is a label of the
request, attempt and token counters, so that the local share is a ratio of two sums;
``llm_router_grpc_calls_total`` counts every Router call by final status code, those
turned away before any model included (``service/call_counter.py``); the process
(CPU, memory, file descriptors, start time), the Python platform and its garbage
collector have prometheus-client's standard collectors.

Money is in US dollars, as Prometheus names units (``llm_router_cost_usd_total``): the
known costs of attempts, the attempts whose cost is unknown (counted, not guessed), and
the cost avoided by answers from models without a price (``pricing/``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from llm_router_server.breaker.rules import State, Transition
from llm_router_server.metrics.bus import MetricsBus
from llm_router_server.metrics.counters import classify
from llm_router_server.types import Outcome, RouteEvent, RouteStatus

logger = logging.getLogger(__name__)

CIRCUIT_VALUES = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 8, 10, 20, 30, 60)


class _BusCollector(Collector):
    """Reads the bus's own counters at scrape time."""

    def __init__(self, bus: MetricsBus) -> None:
        self.bus = bus

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self.bus.stats()
        yield CounterMetricFamily(
            "llm_router_metrics_events_published",
            "Route events handed to the metrics bus by this replica.",
            value=s.published,
        )
        yield CounterMetricFamily(
            "llm_router_metrics_events_dropped",
            "Route events lost because the publish buffer was full (Redis slow or down).",
            value=s.dropped,
        )
        yield GaugeMetricFamily(
            "llm_router_metrics_events_buffered",
            "Route events waiting to be sent to Redis.",
            value=s.buffered,
        )
        yield GaugeMetricFamily(
            "llm_router_metrics_backend_up",
            "1 when the metrics backend (Redis, or in-process) is reachable.",
            value=1 if s.connected else 0,
        )
        yield GaugeMetricFamily(
            "llm_router_watchers", "WatchMetrics streams open on this replica.", value=s.watchers
        )
        yield CounterMetricFamily(
            "llm_router_watcher_missed_events",
            "Events that overflowed a slow watcher's queue (reported to that watcher).",
            value=s.watcher_missed,
        )


class PrometheusExporter:
    """Counts this replica's events and calls into a registry (served by ``web.py``)."""

    def __init__(
        self, listen: str, bus: MetricsBus, localities: Mapping[str, str] | None = None
    ) -> None:
        self.listen = listen
        self.localities = dict(localities or {})
        """``local`` or ``cloud`` by model string (the configured models)."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llm_router_requests",
            "Route calls by chain, answering model ('none' when none), its locality and status.",
            ["chain", "model", "locality", "status"],
            registry=r,
        )
        self.attempts = Counter(
            "llm_router_attempts",
            "Model attempts by chain, model, locality, outcome and reason category.",
            ["chain", "model", "locality", "outcome", "reason"],
            registry=r,
        )
        self.calls = Counter(
            "llm_router_grpc_calls",
            "Router calls by method and final gRPC status code, including those rejected "
            "before any model (INVALID_ARGUMENT, UNAUTHENTICATED, RESOURCE_EXHAUSTED).",
            ["method", "code"],
            registry=r,
        )
        self.fallbacks = Counter(
            "llm_router_fallbacks",
            "Rejected attempts after which the chain went on to the next model.",
            ["chain", "model"],
            registry=r,
        )
        self.tokens = Counter(
            "llm_router_tokens",
            "Tokens reported by providers, by model, locality and kind (prompt, completion).",
            ["chain", "model", "locality", "kind"],
            registry=r,
        )
        self.attempt_latency = Histogram(
            "llm_router_attempt_latency_seconds",
            "Wall-clock time of one model attempt.",
            ["chain", "model", "outcome"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.request_latency = Histogram(
            "llm_router_request_latency_seconds",
            "Wall-clock time of a whole Route call.",
            ["chain", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.cost = Counter(
            "llm_router_cost_usd",
            "US dollars spent on model attempts whose cost is known (tokens at the model's price).",
            ["chain", "model"],
            registry=r,
        )
        self.cost_unknown = Counter(
            "llm_router_cost_unknown_attempts",
            "Attempts that ran and whose cost is unknown (no price, or no usage reported).",
            ["chain", "model"],
            registry=r,
        )
        self.cost_avoided = Counter(
            "llm_router_cost_avoided_usd",
            "US dollars the answers of models without a price would have cost on the chain's "
            "first priced model, by answering model.",
            ["chain", "model"],
            registry=r,
        )
        self.answers = Counter(
            "llm_router_answers",
            "Route calls answered, by whether a model without a price (local) answered.",
            ["chain", "local"],
            registry=r,
        )
        self.repairs = Counter(
            "llm_router_repairs",
            "Repair attempts (a model asked again with its invalid answer), by outcome.",
            ["chain", "model", "outcome"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "llm_router_circuit_state",
            "Circuit breaker state as this replica last changed it: 0 closed, 1 half-open, 2 open.",
            ["model", "api_base"],
            registry=r,
        )
        self.circuit_changes = Counter(
            "llm_router_circuit_transitions",
            "Circuit breaker state changes made by this replica, by the state entered.",
            ["model", "state"],
            registry=r,
        )
        r.register(_BusCollector(bus))
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.port = 0
        """The HTTP port serving ``/metrics`` (set by ``web.py`` when it listens)."""
        bus.observe(self.observe)

    def locality(self, model: str) -> str:
        return self.localities.get(model, "none" if model == "none" else "unknown")

    def call_finished(self, method: str, code: str) -> None:
        """One Router call ended with ``code`` (``service/call_counter.py`` calls this)."""
        self.calls.labels(method, code).inc()

    def observe(self, event: RouteEvent) -> None:
        chain = event.chain
        used = event.model_used
        self.requests.labels(chain, used, self.locality(used), event.status.value).inc()
        self.request_latency.labels(chain, event.status.value).observe(event.latency_ms / 1000)
        for attempt in event.attempts:
            where = self.locality(attempt.model)
            self.attempts.labels(
                chain, attempt.model, where, attempt.outcome.value, attempt.category.value
            ).inc()
            if attempt.outcome is not Outcome.SKIPPED:
                self.attempt_latency.labels(chain, attempt.model, attempt.outcome.value).observe(
                    attempt.latency_ms / 1000
                )
            if attempt.usage is not None:
                usage = attempt.usage
                self.tokens.labels(chain, attempt.model, where, "prompt").inc(usage.prompt_tokens)
                self.tokens.labels(chain, attempt.model, where, "completion").inc(
                    usage.completion_tokens
                )
            if attempt.outcome is not Outcome.SKIPPED:
                if attempt.cost_usd is None:
                    self.cost_unknown.labels(chain, attempt.model).inc()
                else:
                    self.cost.labels(chain, attempt.model).inc(attempt.cost_usd)
            if attempt.repair:
                self.repairs.labels(chain, attempt.model, attempt.outcome.value).inc()
        if event.status is RouteStatus.OK:
            self.answers.labels(chain, "true" if event.local_answer else "false").inc()
            if event.cost_avoided_usd:
                self.cost_avoided.labels(chain, event.model_used).inc(event.cost_avoided_usd)
        for attempt, kind in classify(event.attempts):
            if kind == "fallback":
                self.fallbacks.labels(chain, attempt.model).inc()

    def circuit_changed(self, change: Transition) -> None:
        self.circuit_state.labels(change.model, change.api_base).set(CIRCUIT_VALUES[change.new])
        self.circuit_changes.labels(change.model, change.new.value).inc()
