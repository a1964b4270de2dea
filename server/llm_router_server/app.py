"""Wiring: build the chain, the provider and the metrics bus from a Config, and serve gRPC.

The server registers ``llm_router.v1.Router``, the standard ``grpc.health.v1``
health service and server reflection (so ``grpcurl list`` works). On SIGTERM or
SIGINT health goes NOT_SERVING, in-flight calls get ``server.grace_seconds`` to
finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from llm_router.v1 import router_pb2
from llm_router_server import logs
from llm_router_server.breaker.breaker import CircuitBreaker
from llm_router_server.breaker.prober import Prober
from llm_router_server.breaker.store import BreakerStore, InMemoryBreakerStore
from llm_router_server.breaker.watch import WatchedProvider, cuttable
from llm_router_server.config import Config
from llm_router_server.config.secrets import secrets_of
from llm_router_server.embedded.process import attach
from llm_router_server.errors import ConfigError
from llm_router_server.metrics.bus import MetricsBus
from llm_router_server.metrics.live import LiveFeed
from llm_router_server.metrics.memory import InMemoryMetricsBus
from llm_router_server.metrics.prometheus import PrometheusExporter
from llm_router_server.metrics.web import MetricsWebServer
from llm_router_server.pricing.book import PriceBook
from llm_router_server.providers.base import Provider
from llm_router_server.providers.identity import identify
from llm_router_server.providers.protocols import missing_api_key, unenforced_keywords
from llm_router_server.routing.chain import Router
from llm_router_server.routing.validation.offload import Validation
from llm_router_server.routing.warmup import warm_up
from llm_router_server.safe_text import add_secrets, environment_secrets
from llm_router_server.service.call_counter import CallCounter
from llm_router_server.service.decoding import TolerantServer
from llm_router_server.service.security import BearerTokenInterceptor, server_credentials
from llm_router_server.service.servicer import RouterServicer, add_router_to_server

if TYPE_CHECKING:
    from llm_router_server.tracing.setup import Tracing

logger = logging.getLogger(__name__)

ROUTER_SERVICE = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name

KEEPALIVE_OPTIONS = (
    # Clients (the Go client: every 30 s; grpc-go allows down to 10 s) may ping while a
    # call is open, even when no data flows (a long Route, a quiet WatchMetrics stream);
    # gRPC's default (5 min) would answer such pings with GOAWAY "too_many_pings".
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
)


def default_provider(config: Config) -> Provider:
    """The native HTTP path with litellm behind it, loaded in the background (see dispatch.py)."""
    from llm_router_server.providers.dispatch import DispatchProvider

    models = [m for chain in config.chains.values() for m in chain.models]
    return DispatchProvider(
        models,
        default_max_tokens=config.default_max_tokens,
        max_answer_chars=config.limits.max_answer_chars,
    )


def default_bus(config: Config) -> MetricsBus:
    """Redis when ``metrics.redis_url`` is set (imported here: only redis_bus imports redis),
    else in-process."""
    m = config.metrics
    replica_id = m.replica_id or f"{socket.gethostname()}-{os.getpid()}"
    if m.redis_url:
        from llm_router_server.metrics.redis_bus import RedisMetricsBus

        return RedisMetricsBus(
            m.redis_url,
            replica_id=replica_id,
            buffer_size=m.buffer_size,
            stream_maxlen=m.stream_maxlen,
            timeout=m.redis_timeout,
        )
    return InMemoryMetricsBus(replica_id=replica_id, history=m.stream_maxlen)


def default_breaker_store(config: Config) -> BreakerStore:
    """Circuits in Redis when a Redis URL is configured (shared by replicas), else in-process."""
    if config.breaker.shared and config.metrics.redis_url:
        from llm_router_server.breaker.redis_store import RedisBreakerStore

        return RedisBreakerStore.from_url(config.metrics.redis_url)
    return InMemoryBreakerStore()


def default_tracing(config: Config, replica_id: str) -> Tracing | None:
    """OpenTelemetry when ``[tracing]`` (or ``OTEL_*``) turned it on, else None (nothing
    of it is imported then)."""
    if not config.tracing.enabled:
        return None
    try:
        from llm_router_server.tracing.setup import Tracing
    except ImportError as exc:
        raise ConfigError(
            f"tracing is on but OpenTelemetry is not installed ({exc.name} is missing): "
            "pip install 'llm-router[tracing]', or turn tracing off"
        ) from exc
    return Tracing(config.tracing, replica_id=replica_id)


class App:
    """One running server: the gRPC server plus what it owns."""

    def __init__(
        self,
        config: Config,
        provider: Provider | None = None,
        bus: MetricsBus | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        # The embedded model's URL is known now; its process starts in start().
        config, self.embedded = attach(config)
        # Redacted by value from now on: every key, token and URL credential there is.
        add_secrets([*secrets_of(config), *environment_secrets(os.environ)])
        self.config = config
        self.provider = provider if provider is not None else default_provider(config)
        self.bus = bus if bus is not None else default_bus(config)
        self.tracing = (
            tracing if tracing is not None else default_tracing(config, self.bus.replica_id)
        )
        specs = [spec for chain in config.chains.values() for spec in chain.models]
        identities = {spec.model: identify(spec) for spec in specs}
        self.prometheus: PrometheusExporter | None = None
        if config.metrics.prometheus_listen:
            self.prometheus = PrometheusExporter(
                config.metrics.prometheus_listen,
                self.bus,
                {model: who.locality for model, who in identities.items()},
            )
        breaker = CircuitBreaker(default_breaker_store(config), config.breaker)
        chains = config.chains.values()
        self.router = Router(
            config.chains,
            # The breaker watches the chain's calls (slow ones, cut short when it opens).
            WatchedProvider(self.provider, breaker, cuttable(chains)),
            self.bus,
            default_chain=config.default_chain,
            refusal_patterns=config.refusal_patterns,
            limits=config.limits,
            min_attempt_seconds=config.server.min_attempt_ms / 1000,
            breaker=breaker,
            observer=self.tracing.observer if self.tracing is not None else None,
            validation=Validation(config.validation),
            prices=PriceBook(),
            unenforced=unenforced_keywords,
        )
        # Open circuits are probed in the background, with the provider itself.
        self.prober = Prober(breaker, self.provider, (m for c in chains for m in c.models))
        # Circuit changes go to this replica's watchers and to Prometheus as they happen.
        self.router.breaker.listeners.append(self.bus.notice)
        if self.prometheus is not None:
            self.router.breaker.listeners.append(self.prometheus.circuit_changed)
        self.health = health.aio.HealthServicer()
        self.auth = BearerTokenInterceptor(config.auth.tokens) if config.auth.tokens else None
        self.web: MetricsWebServer | None = None
        if self.prometheus is not None:
            feed = LiveFeed(
                self.bus,
                models=identities,
                local_stats=self.router.counters.stats,
                local_chain_stats=self.router.chain_counters.stats,
                circuits=lambda: self.router.breaker.states(specs),
                queue=config.metrics.watcher_queue,
            )
            self.web = MetricsWebServer(
                config.metrics.prometheus_listen, self.prometheus.registry, feed
            )
        # Outermost first: every call is counted, and the Route span covers calls the token
        # check turns away.
        interceptors: list[Any] = []
        if self.prometheus is not None:
            interceptors.append(CallCounter(self.prometheus.call_finished))
        if self.tracing is not None:
            interceptors.append(self.tracing.interceptor)
        if self.auth is not None:
            interceptors.append(self.auth)
        self.server = grpc.aio.server(
            interceptors=interceptors or None,
            options=[
                *KEEPALIVE_OPTIONS,
                ("grpc.max_receive_message_length", config.server.max_receive_bytes),
                # A second server on a busy port fails instead of sharing it silently.
                ("grpc.so_reuseport", 0),
            ],
        )
        self.warm_up: asyncio.Task[None] | None = None
        # Requests that do not decode are INVALID_ARGUMENT, not UNKNOWN (service/decoding.py).
        tolerant = TolerantServer(self.server)
        add_router_to_server(
            RouterServicer(
                self.router,
                deadline_margin_ms=config.server.deadline_margin_ms,
                watcher_queue=config.metrics.watcher_queue,
            ),
            tolerant,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, tolerant)
        reflection.enable_server_reflection(
            (
                ROUTER_SERVICE,
                health.SERVICE_NAME,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self.port = 0

    async def start(self) -> int:
        """Bind, warm the provider up, start serving; returns the bound port.

        A port that cannot be bound raises ``OSError`` naming its key, before anything
        else starts; whatever fails later stops what had started."""
        self.port = self._bind()
        self.router.prices.start()  # litellm's price table, read in a worker thread
        try:
            if self.web is not None and self.prometheus is not None:
                self.prometheus.port = await self._start_web(self.web)
            if self.embedded is not None:
                await self.embedded.start()  # healthy before the server reports SERVING
            await self.provider.start()
            await self.bus.start()
            if self.tracing is not None:
                from llm_router_server.tracing.setup import current_trace_ids

                logs.set_trace_ids(current_trace_ids)
            await self.server.start()
        except BaseException:
            await self.stop(0)
            raise
        self.router.validation.start()  # a validation worker, in the background
        self.prober.start()
        for service in (health.OVERALL_HEALTH, ROUTER_SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        # In the background: health is SERVING whatever the warm-up's outcome.
        self.warm_up = asyncio.ensure_future(warm_up(self.provider, self.config.chains.values()))
        return self.port

    def _bind(self) -> int:
        listen = self.config.server.listen
        try:
            if self.config.tls.cert_file:
                credentials = server_credentials(self.config.tls)
                port = self.server.add_secure_port(listen, credentials)
            else:
                port = self.server.add_insecure_port(listen)
        except RuntimeError:  # grpc: "Failed to bind to address ..."
            port = 0
        if port == 0:
            raise OSError(f"server.listen: cannot listen on {listen}: {_bind_error(listen)}")
        return port

    async def _start_web(self, web: MetricsWebServer) -> int:
        listen = self.config.metrics.prometheus_listen
        try:
            return await web.start()
        except OSError as exc:  # aiohttp's strerror is a sentence: the OS's words by errno
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(f"metrics.prometheus_listen: cannot listen on {listen}: {why}") from exc

    async def stop(self, grace: float | None = None) -> None:
        """Go NOT_SERVING, let in-flight calls finish within the grace period, release all."""
        await self.health.enter_graceful_shutdown()
        if self.warm_up is not None:
            self.warm_up.cancel()
            await asyncio.gather(self.warm_up, return_exceptions=True)
        await self.server.stop(self.config.server.grace_seconds if grace is None else grace)
        await self.prober.aclose()
        await self.provider.aclose()
        if self.embedded is not None:
            await self.embedded.stop()
        await self.bus.aclose()
        if self.web is not None:
            await self.web.stop()
        await self.router.breaker.aclose()
        if self.tracing is not None:
            logs.set_trace_ids(None)
            await asyncio.to_thread(self.tracing.shutdown)


def _bind_error(address: str) -> str:
    """Why ``address`` cannot be bound, as the OS says it (gRPC does not say)."""
    host, _, port = address.rpartition(":")
    if address.startswith(("unix:", "unix-abstract:")):
        return "gRPC could not bind the socket"
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host.strip("[]"), int(port), type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(where)
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return "gRPC could not bind it"


def warn_missing_api_keys(config: Config, env: Mapping[str, str]) -> list[str]:
    """Log (and return) one warning per cloud model whose API key is not set: its calls
    would fail with an authentication error, and its circuit would open."""
    warnings = []
    seen = set()
    for chain in config.chains.values():
        for spec in chain.models:
            variable = missing_api_key(spec, env)
            if variable is not None and spec.model not in seen:
                seen.add(spec.model)
                warnings.append(
                    f"{spec.model}: {variable} is not set (nor params.api_key); its calls "
                    "will fail with an authentication error"
                )
    for warning in warnings:
        logger.warning("%s", warning)
    return warnings


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    started = time.monotonic()
    app = App(config)
    warn_missing_api_keys(app.config, os.environ)
    port = await app.start()
    host = config.server.listen.rsplit(":", 1)[0]
    logger.info(
        "llm-router serving on %s:%d (chains: %s; default %r; metrics: %s) in %.2fs",
        host,
        port,
        ", ".join(sorted(config.chains)),
        config.default_chain,
        "redis" if config.metrics.redis_url else "in-process",
        time.monotonic() - started,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info(
        "shutting down: NOT_SERVING, %.3gs grace for in-flight calls", config.server.grace_seconds
    )
    await app.stop()
    logger.info("stopped")
