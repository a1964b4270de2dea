"""The configuration's shape: frozen dataclasses, one docstring per key, and the
enumerated options as ``Literal`` types (their valid values are read off the type).

Each dataclass is one TOML table (``[server]``, ``[metrics]``, ...); a field's default is
the built-in default. ``loader.py`` fills them from the file and the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from llm_router_server.embedded.settings import EmbeddedConfig
from llm_router_server.routing.judging import DEFAULT_REFUSAL_PATTERNS
from llm_router_server.types import ChainSpec

DEFAULT_CHAIN = "default"

DEFAULT_REPAIR_ATTEMPTS = 1
"""``chains.NAME.models[].repair_attempts`` when the file does not set it: one repair. Why
one, measured against a real small model: docs/economics.md."""
MAX_REPAIR_ATTEMPTS = 5
"""The most repairs a model may be given: each is a whole model call within the deadline."""

EventLoop = Literal["uvloop", "asyncio"]
"""``server.event_loop``: the loop of ``llm-router serve`` (``event_loop.py``)."""

ProviderChoice = Literal["auto", "native", "litellm"]
"""``chains.NAME.models[i].provider`` (``ModelSpec.provider``): which path calls the model,
"auto" (native HTTP when it speaks the model's protocol, else litellm), "native" or
"litellm" (``providers/dispatch.py``)."""

RefusalPolicy = Literal["fall_through", "stop"]
"""``chains.NAME.refusal_policy`` (``ChainSpec.refusal_policy``): what a provider's safety
refusal does, ``fall_through`` to the next model or ``stop`` the call (PERMISSION_DENIED)."""

LogFormat = Literal["text", "json"]
"""``server.log_format``: log lines of ``llm-router serve`` as text or one JSON object each
(``logs.py``)."""
ProbeMode = Literal["auto", "background", "live"]
"""``chains.NAME.models[i].probe`` (``ModelSpec.probe``): how an open circuit finds out that
its model answers again (``breaker/rules.py``). ``background``: the router sends a one-token
probe every ``breaker.probe_interval_seconds`` and closes the circuit at the first answer;
calls skip the model meanwhile. ``live``: after the cool-down one caller's call goes through
as the probe (half-open), and a failure doubles the cool-down. ``auto``: ``background``,
except after the provider's own word (a rate limit, a refused key): then ``live``, once the
time the provider asked for has passed."""

WhenAllOpen = Literal["try_one", "fail"]
"""``breaker.when_all_open``: when every model of a chain is skipped as open, ``try_one``
calls the model whose circuit opened longest ago; ``fail`` answers UNAVAILABLE."""


@dataclass(frozen=True)
class ServerConfig:
    """How the gRPC server listens and stops."""

    listen: str = "127.0.0.1:50051"
    """host:port to listen on. Keep it on loopback or a private network: there is no auth."""
    grace_seconds: float = 10.0
    """On SIGTERM/SIGINT, how long in-flight calls may take to finish."""
    deadline_margin_ms: float = 50.0
    """Kept back from the caller's deadline so the reply (with its attempts) reaches the
    caller before its own deadline fires."""
    min_attempt_ms: float = 50.0
    """A model is not started when less than this is left of the caller's deadline."""
    max_receive_bytes: int = 4 * 1024 * 1024
    """Largest request message the server accepts; larger ones get RESOURCE_EXHAUSTED."""
    event_loop: EventLoop = "uvloop"
    """The event loop of ``llm-router serve``: ``"uvloop"`` or ``"asyncio"`` (event_loop.py)."""
    log_format: LogFormat = "text"
    """Log lines of ``llm-router serve``: ``"text"`` or ``"json"`` (logs.py)."""


@dataclass(frozen=True)
class MetricsConfig:
    """Where Route events go."""

    redis_url: str = ""
    """Redis URL for the ``llm_router_metrics`` channel; empty keeps metrics in-process."""
    replica_id: str = ""
    """Names this server in events; empty means ``<hostname>-<pid>``."""
    buffer_size: int = 10000
    """Events held while Redis is slow or down; more are counted as dropped."""
    stream_maxlen: int = 10000
    """About how many recent events the Redis Stream keeps for watchers that resume."""
    redis_timeout: float = 2.0
    """Seconds any one Redis operation may take before Redis counts as unreachable."""
    watcher_queue: int = 1000
    """Events queued per WatchMetrics stream; a watcher that falls further behind is told
    how many it missed."""
    prometheus_listen: str = ""
    """host:port of the Prometheus /metrics HTTP endpoint; empty (the default) serves none."""


@dataclass(frozen=True)
class Limits:
    """Bounds on a Route request, checked before any model is called (``routing/limits.py``),
    and on a model's answer."""

    max_messages: int = 200
    """Most messages one request may carry."""
    max_message_chars: int = 200_000
    """Longest content of one message, in characters."""
    max_schema_chars: int = 100_000
    """Longest schema text, in characters."""
    max_schema_depth: int = 32
    """Deepest nesting of objects and arrays in the schema."""
    max_context_chars: int = 256
    """Longest ``context`` label, in characters (it is kept in every event and logged)."""
    max_answer_chars: int = 500_000
    """Longest answer a model may give, in characters; a longer one is rejected (the chain
    goes on). The default keeps every reply (answer, parsed content, attempts) within the
    4 MiB a default gRPC client accepts."""


@dataclass(frozen=True)
class ValidationPolicy:
    """``[validation]``: the budgets and the workers of schema checks and answer judging."""

    answer_budget_ms: float = 1000.0
    """Most time judging one answer (parsing, validating) may take in a worker; past it the
    answer is rejected (``VALIDATION_TIMEOUT``) and the next model is tried."""
    schema_budget_ms: float = 5000.0
    """Most time checking a new schema may take; past it the call is INVALID_ARGUMENT."""
    workers: int = 2
    """Validation worker processes (killed and replaced when they run out of budget)."""
    schema_cache_mb: float = 32.0
    """Memory for checked schemas, estimated (in the server and in each worker)."""


@dataclass(frozen=True)
class BreakerPolicy:
    """The numbers of the circuit breaker (``breaker/rules.py``)."""

    enabled: bool = True
    """False: every model is always called; no circuit is kept."""
    failure_threshold: int = 3
    """Consecutive failures that open a closed circuit."""
    cool_down_seconds: float = 30.0
    """How long a circuit stays open before a live probe call (models probed ``live``, or
    after a rate limit without Retry-After); background probes do not wait for it."""
    max_cool_down_seconds: float = 300.0
    """Cap on any cool-down: a Retry-After, the back-off after failed live probes, auth errors."""
    when_all_open: WhenAllOpen = "try_one"
    """When every model of a chain is skipped as open: ``try_one`` calls the model whose
    circuit opened longest ago (the least recently failed); ``fail`` answers UNAVAILABLE."""
    shared: bool = True
    """Keep circuits in Redis (``metrics.redis_url``) when one is configured, shared by all
    replicas; False keeps them per process."""
    probe_interval_seconds: float = 1.0
    """While a circuit is open (and its model is probed in the background), how often a
    one-token probe is sent: once per interval for all replicas sharing the breaker."""
    hang_fraction: float = 0.5
    """A call that got no answer after this fraction of its model's timeout counts as one
    failure at once (a silent model opens its circuit after ``failure_threshold`` such calls,
    and the calls still waiting on it move on); 1: none counts before its end. A whole
    timeout without an answer opens the circuit at once either way (a hang)."""


@dataclass(frozen=True)
class AuthConfig:
    """Bearer-token authentication of Router calls (health stays open)."""

    tokens: tuple[str, ...] = ()
    """Accepted tokens (``authorization: Bearer <token>``); empty: no authentication.
    ``$LLM_ROUTER_AUTH_TOKENS`` (comma-separated) adds to them."""


@dataclass(frozen=True)
class TLSConfig:
    """TLS for the gRPC port; mTLS when ``client_ca_file`` is set."""

    cert_file: str = ""
    """PEM certificate chain of the server; empty: plaintext."""
    key_file: str = ""
    """PEM private key of the server."""
    client_ca_file: str = ""
    """PEM CA certificates; when set, clients must present a certificate signed by one."""


@dataclass(frozen=True)
class TracingConfig:
    """OpenTelemetry traces (``tracing/``): where and how they are exported."""

    enabled: bool = False
    """Export traces. Also on when ``OTEL_TRACES_EXPORTER=otlp`` or an OTLP endpoint
    variable is set; off whatever the file says with ``OTEL_SDK_DISABLED=true`` or
    ``OTEL_TRACES_EXPORTER=none``."""
    endpoint: str = ""
    """OTLP/HTTP traces URL (``http://collector:4318/v1/traces``); empty: the exporter's
    own default (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    else ``http://localhost:4318/v1/traces``)."""
    service_name: str = "llm-router"
    """``service.name`` of the spans; ``OTEL_SERVICE_NAME`` wins when set."""
    sample_ratio: float = 1.0
    """Share of new traces recorded (0..1); a caller's sampled flag is followed."""


@dataclass(frozen=True)
class Config:
    """Everything the server needs, validated."""

    server: ServerConfig = field(default_factory=ServerConfig)
    """``[server]``."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """``[metrics]``."""
    limits: Limits = field(default_factory=Limits)
    """``[limits]``."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    """``[breaker]``."""
    auth: AuthConfig = field(default_factory=AuthConfig)
    """``[auth]``."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    """Schema checks and answer judging off the event loop (``routing/validation/``)."""
    embedded: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    """The embedded local model (embedded/settings.py)."""
    """``[tls]``."""
    tracing: TracingConfig = field(default_factory=TracingConfig)
    """``[tracing]``."""
    refusal_patterns: tuple[str, ...] = DEFAULT_REFUSAL_PATTERNS
    """Case-insensitive substrings that mark an answer as a refusal."""
    default_max_tokens: int = 4096
    """max_tokens sent to every model whose params do not set it (Anthropic's default is
    the model's maximum, 64k or more)."""
    default_chain: str = DEFAULT_CHAIN
    """The chain used when a request names none."""
    chains: Mapping[str, ChainSpec] = field(default_factory=dict)
    """``[chains.NAME]``: named, ordered lists of models (``types.ChainSpec``)."""
