"""Configuration: frozen dataclasses loaded once at start-up from TOML plus environment.

Sources, later wins: built-in defaults (the seed's chain), the TOML file named
by ``--config`` or ``LLM_ROUTER_CONFIG``, then ``LLM_ROUTER_LISTEN`` and
``LLM_ROUTER_REDIS_URL``. ``${VAR}`` and ``${VAR:-default}`` in string values of
the file are expanded from the environment. Unknown keys, bad values and a
missing file raise ``ConfigError`` naming the key: start-up stops rather than
running on a silent default.

See ``config.example.toml`` for every key with its meaning.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from llm_router_server.breaker.breaker import WHEN_ALL_OPEN, BreakerPolicy
from llm_router_server.errors import ConfigError
from llm_router_server.event_loop import EVENT_LOOPS
from llm_router_server.providers.protocols import PROVIDER_CHOICES
from llm_router_server.routing.judging import DEFAULT_REFUSAL_PATTERNS, Limits
from llm_router_server.routing.validation.offload import ValidationPolicy
from llm_router_server.types import ChainSpec, ModelSpec

DEFAULT_OLLAMA_API_BASE = "http://127.0.0.1:11434"
DEFAULT_CHAIN = "default"

T = TypeVar("T")


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
    event_loop: str = "uvloop"
    """The event loop of ``llm-router serve``: ``"uvloop"`` or ``"asyncio"`` (event_loop.py)."""


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


REFUSAL_POLICIES = ("fall_through", "stop")


@dataclass(frozen=True)
class Config:
    """Everything the server needs, validated."""

    server: ServerConfig = field(default_factory=ServerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    limits: Limits = field(default_factory=Limits)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    refusal_patterns: tuple[str, ...] = DEFAULT_REFUSAL_PATTERNS
    """Case-insensitive substrings that mark an answer as a refusal."""
    default_max_tokens: int = 4096
    """max_tokens sent to every model whose params do not set it (Anthropic's default is
    the model's maximum, 64k or more)."""
    default_chain: str = DEFAULT_CHAIN
    """The chain used when a request names none."""
    chains: Mapping[str, ChainSpec] = field(default_factory=dict)


def default_chains(env: Mapping[str, str]) -> dict[str, ChainSpec]:
    """The seed's chain: local Qwen on Ollama, then Claude Haiku, then Claude Sonnet."""
    ollama = env.get("OLLAMA_API_BASE") or DEFAULT_OLLAMA_API_BASE
    return {
        DEFAULT_CHAIN: ChainSpec(
            name=DEFAULT_CHAIN,
            models=(
                ModelSpec("ollama_chat/qwen2.5:7b", timeout=8.0, api_base=ollama),
                ModelSpec("claude-haiku-4-5-20251001", timeout=30.0),
                ModelSpec("claude-sonnet-4-6", timeout=30.0),
            ),
        )
    }


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, key: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{key}: environment variable {name} is not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", env) for i, v in enumerate(value)]
    return value


class _Table:
    """A TOML table read key by key; whatever is left unread is an unknown key."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'config'}: expected a table")
        self.data = dict(data)
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def take(self, name: str, kind: type[T], default: T) -> T:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(
                f"{self.key(name)}: expected {kind.__name__}, got {type(value).__name__} {value!r}"
            )
        return value

    def positive(self, name: str, kind: type[T], default: T) -> T:
        value = self.take(name, kind, default)
        if not value > 0:  # type: ignore[operator]
            raise ConfigError(f"{self.key(name)}: must be > 0, got {value!r}")
        return value

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self.take(name, str, default)
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{self.key(name)}: expected one of {listed}, got {value!r}")
        return value

    def table(self, name: str) -> _Table:
        return _Table(self.data.pop(name, {}), self.key(name))

    def done(self) -> None:
        if self.data:
            unknown = ", ".join(repr(self.key(k)) for k in sorted(self.data))
            raise ConfigError(f"unknown key(s): {unknown}")


def _model(raw: Any, path: str) -> ModelSpec:
    t = _Table(raw, path)
    name = t.take("model", str, "")
    if not name:
        raise ConfigError(f"{t.key('model')}: required, e.g. 'ollama_chat/qwen2.5:7b'")
    spec = ModelSpec(
        model=name,
        timeout=t.positive("timeout", float, 30.0),
        api_base=t.take("api_base", str, "") or None,
        structured_output=t.take("structured_output", bool, True),
        params=t.take("params", dict, {}),
        provider=t.choice("provider", PROVIDER_CHOICES, "auto"),
        max_concurrency=t.take("max_concurrency", int, 0),
        warm_up=t.take("warm_up", bool, False),
    )
    if spec.max_concurrency < 0:
        raise ConfigError(f"{t.key('max_concurrency')}: must be >= 0, got {spec.max_concurrency}")
    t.done()
    _check_provider(spec, t.key("provider"))
    return spec


def _check_provider(spec: ModelSpec, key: str) -> None:
    """``"native"`` only for a model the native path can serve."""
    from llm_router_server.providers.protocols import unsupported

    why = unsupported(spec) if spec.provider == "native" else None
    if why is not None:
        raise ConfigError(f"{key}: 'native' cannot serve this model: {why}")


def _chains(t: _Table) -> dict[str, ChainSpec]:
    chains: dict[str, ChainSpec] = {}
    for name in list(t.data):
        chain = t.table(name)
        raw_models = chain.take("models", list, [])
        if not raw_models:
            raise ConfigError(f"{chain.key('models')}: a chain needs at least one model")
        models = tuple(_model(m, f"{chain.key('models')}[{i}]") for i, m in enumerate(raw_models))
        hedge = chain.take("hedge_after_ms", float, 0.0)
        if hedge < 0:
            raise ConfigError(f"{chain.key('hedge_after_ms')}: must be >= 0, got {hedge!r}")
        policy = chain.choice("refusal_policy", REFUSAL_POLICIES, "fall_through")
        chain.done()
        chains[name] = ChainSpec(
            name=name, models=models, hedge_after_ms=hedge, refusal_policy=policy
        )
    return chains


def _env_or(env: Mapping[str, str], name: str, value: str) -> str:
    return env.get(name) or value


def _check_metrics(metrics: MetricsConfig, t: _Table) -> None:
    url = metrics.redis_url
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"{t.key('redis_url')}: expected redis://, rediss:// or unix:// URL, got {url!r}"
        )
    listen = metrics.prometheus_listen
    if listen:
        host, sep, port = listen.rpartition(":")
        if not (sep and host and port.isdigit() and int(port) <= 65535):
            raise ConfigError(
                f"{t.key('prometheus_listen')}: expected host:port, e.g. '127.0.0.1:9464', "
                f"got {listen!r}"
            )


def _breaker(t: _Table) -> BreakerPolicy:
    d = BreakerPolicy()
    policy = BreakerPolicy(
        enabled=t.take("enabled", bool, d.enabled),
        failure_threshold=t.positive("failure_threshold", int, d.failure_threshold),
        cool_down_seconds=t.positive("cool_down_seconds", float, d.cool_down_seconds),
        max_cool_down_seconds=t.positive("max_cool_down_seconds", float, d.max_cool_down_seconds),
        when_all_open=t.choice("when_all_open", WHEN_ALL_OPEN, d.when_all_open),
        shared=t.take("shared", bool, d.shared),
    )
    if policy.max_cool_down_seconds < policy.cool_down_seconds:
        raise ConfigError(f"{t.key('max_cool_down_seconds')}: must be >= cool_down_seconds")
    t.done()
    return policy


def _auth(t: _Table, env: Mapping[str, str]) -> AuthConfig:
    tokens = t.take("tokens", list, [])
    tokens += [x.strip() for x in env.get("LLM_ROUTER_AUTH_TOKENS", "").split(",") if x.strip()]
    for token in tokens:
        if not isinstance(token, str) or len(token.strip()) < 16 or token != token.strip():
            # The value itself is never printed: it is a secret.
            raise ConfigError(
                f"{t.key('tokens')}: every token must be a string of at least 16 characters "
                "without surrounding spaces"
            )
    t.done()
    return AuthConfig(tokens=tuple(tokens))


def _tls(t: _Table) -> TLSConfig:
    tls = TLSConfig(
        cert_file=t.take("cert_file", str, ""),
        key_file=t.take("key_file", str, ""),
        client_ca_file=t.take("client_ca_file", str, ""),
    )
    t.done()
    if bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError(f"{t.key('cert_file')}/{t.key('key_file')}: set both or neither")
    if tls.client_ca_file and not tls.cert_file:
        raise ConfigError(f"{t.key('client_ca_file')}: mTLS needs cert_file and key_file too")
    for name in ("cert_file", "key_file", "client_ca_file"):
        path = getattr(tls, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"{t.key(name)}: file not found: {path}")
    return tls


# -- [validation]: schema checks and answer judging (routing/validation/offload.py) ----------


def _validation(t: _Table) -> ValidationPolicy:
    d = ValidationPolicy()
    policy = ValidationPolicy(
        answer_budget_ms=t.positive("answer_budget_ms", float, d.answer_budget_ms),
        schema_budget_ms=t.positive("schema_budget_ms", float, d.schema_budget_ms),
        workers=t.positive("workers", int, d.workers),
        schema_cache_mb=t.positive("schema_cache_mb", float, d.schema_cache_mb),
    )
    for name in ("answer_budget_ms", "schema_budget_ms", "schema_cache_mb"):
        if not math.isfinite(getattr(policy, name)):
            raise ConfigError(f"{t.key(name)}: must be finite, got {getattr(policy, name)!r}")
    t.done()
    return policy


# -- end [validation] -----------------------------------------------------------------------


def parse(data: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """Build a Config from parsed TOML (already a dict) and the environment."""
    root = _Table(_expand(dict(data), "", env), "")
    s = root.table("server")
    server = ServerConfig(
        listen=_env_or(env, "LLM_ROUTER_LISTEN", s.take("listen", str, ServerConfig.listen)),
        grace_seconds=s.positive("grace_seconds", float, ServerConfig.grace_seconds),
        deadline_margin_ms=s.take("deadline_margin_ms", float, ServerConfig.deadline_margin_ms),
        min_attempt_ms=s.take("min_attempt_ms", float, ServerConfig.min_attempt_ms),
        max_receive_bytes=s.positive("max_receive_bytes", int, ServerConfig.max_receive_bytes),
        event_loop=s.choice("event_loop", EVENT_LOOPS, ServerConfig.event_loop),
    )
    s.done()
    m = root.table("metrics")
    metrics = MetricsConfig(
        # The file's key is read (and so known) even when the environment overrides it.
        redis_url=_env_or(env, "LLM_ROUTER_REDIS_URL", m.take("redis_url", str, "")),
        replica_id=_env_or(env, "LLM_ROUTER_REPLICA_ID", m.take("replica_id", str, "")),
        buffer_size=m.positive("buffer_size", int, MetricsConfig.buffer_size),
        stream_maxlen=m.positive("stream_maxlen", int, MetricsConfig.stream_maxlen),
        redis_timeout=m.positive("redis_timeout", float, MetricsConfig.redis_timeout),
        watcher_queue=m.positive("watcher_queue", int, MetricsConfig.watcher_queue),
        prometheus_listen=_env_or(
            env, "LLM_ROUTER_PROMETHEUS_LISTEN", m.take("prometheus_listen", str, "")
        ),
    )
    _check_metrics(metrics, m)
    m.done()
    lim = root.table("limits")
    limits = Limits(
        max_messages=lim.positive("max_messages", int, Limits.max_messages),
        max_message_chars=lim.positive("max_message_chars", int, Limits.max_message_chars),
        max_schema_chars=lim.positive("max_schema_chars", int, Limits.max_schema_chars),
        max_schema_depth=lim.positive("max_schema_depth", int, Limits.max_schema_depth),
    )
    lim.done()
    breaker = _breaker(root.table("breaker"))
    auth, tls = _auth(root.table("auth"), env), _tls(root.table("tls"))
    validation = _validation(root.table("validation"))
    patterns = root.take("refusal_patterns", list, list(DEFAULT_REFUSAL_PATTERNS))
    if not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError("refusal_patterns: expected a list of non-empty strings")
    default_max_tokens = root.positive("default_max_tokens", int, 4096)
    default_chain = root.take("default_chain", str, DEFAULT_CHAIN)
    chains_table = root.table("chains")
    chains = _chains(chains_table) or default_chains(env)
    chains_table.done()
    root.done()
    if default_chain not in chains:
        raise ConfigError(
            f"default_chain: {default_chain!r} is not defined under [chains] "
            f"(defined: {', '.join(sorted(chains))})"
        )
    return Config(
        server=server,
        metrics=metrics,
        limits=limits,
        breaker=breaker,
        auth=auth,
        tls=tls,
        validation=validation,
        refusal_patterns=tuple(patterns),
        default_max_tokens=default_max_tokens,
        default_chain=default_chain,
        chains=chains,
    )


def load(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load the configuration: ``path``, else ``$LLM_ROUTER_CONFIG``, else defaults only."""
    env = os.environ if env is None else env
    path = path or env.get("LLM_ROUTER_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror}") from exc
    return parse(data, env)
