"""Reading the configuration: TOML plus environment into the dataclasses of ``model.py``.

Sources, later wins: built-in defaults (the seed's chain), the TOML file named
by ``--config`` or ``LLM_ROUTER_CONFIG``, then ``LLM_ROUTER_LISTEN`` and
``LLM_ROUTER_REDIS_URL``. ``${VAR}`` and ``${VAR:-default}`` in string values of
the file are expanded from the environment. Unknown keys, bad values and a
missing file raise ``ConfigError`` naming the dotted key: start-up stops rather
than running on a silent default.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast, get_args

from llm_router_server.config.chains import (
    default_chains,
    read_chains,
)
from llm_router_server.config.model import (
    DEFAULT_CHAIN,
    DEFAULT_REPAIR_ATTEMPTS,
    AuthConfig,
    BreakerPolicy,
    Config,
    EventLoop,
    Limits,
    LogFormat,
    MetricsConfig,
    ServerConfig,
    TLSConfig,
    TracingConfig,
    ValidationPolicy,
    WhenAllOpen,
)
from llm_router_server.config.table import Table, expand_env
from llm_router_server.embedded import settings as embedded_settings
from llm_router_server.errors import ConfigError
from llm_router_server.routing.judging import DEFAULT_REFUSAL_PATTERNS
from llm_router_server.safe_text import without_credentials

MAX_MARGIN_MS = 60_000.0
"""Upper bound of ``server.deadline_margin_ms`` and ``server.min_attempt_ms``."""
MAX_RECEIVE_BYTES = 2**31 - 1
"""gRPC's message size limits are 32-bit."""


_UNIX_FORMS = ("unix:", "unix-abstract:")


def check_listen(
    address: str, key: str, example: str = "127.0.0.1:50051", *, unix: bool = True
) -> None:
    """A listening address: host:port with a port from 0 to 65535 (0: any free port), or
    with ``unix`` one of gRPC's Unix socket forms (``unix:PATH``, ``unix-abstract:NAME``)."""
    if unix and address.startswith(_UNIX_FORMS) and address.partition(":")[2]:
        return
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit() and int(port) <= 65535):
        raise ConfigError(
            f"{key}: expected host:port with a port from 0 to 65535, e.g. {example!r}, "
            f"got {address!r}"
        )


def _env_or(env: Mapping[str, str], name: str, value: str) -> str:
    return env.get(name) or value


def _server(s: Table, env: Mapping[str, str]) -> ServerConfig:
    d = ServerConfig()
    margin = (0, MAX_MARGIN_MS)
    server = ServerConfig(
        listen=_env_or(env, "LLM_ROUTER_LISTEN", s.take("listen", str, d.listen)),
        grace_seconds=s.positive("grace_seconds", float, d.grace_seconds),
        deadline_margin_ms=s.within("deadline_margin_ms", float, d.deadline_margin_ms, *margin),
        min_attempt_ms=s.within("min_attempt_ms", float, d.min_attempt_ms, *margin),
        max_receive_bytes=s.within(
            "max_receive_bytes", int, d.max_receive_bytes, 0, MAX_RECEIVE_BYTES, above=True
        ),
        event_loop=s.choice("event_loop", EventLoop, d.event_loop),
        log_format=_log_format(env, s.choice("log_format", LogFormat, d.log_format)),
    )
    s.done()
    check_listen(
        server.listen, "$LLM_ROUTER_LISTEN" if env.get("LLM_ROUTER_LISTEN") else s.key("listen")
    )
    return server


def _log_format(env: Mapping[str, str], value: LogFormat) -> LogFormat:
    """``$LLM_ROUTER_LOG_FORMAT`` over the file's ``server.log_format``."""
    override = env.get("LLM_ROUTER_LOG_FORMAT") or value
    for known in get_args(LogFormat):
        if override == known:
            return cast(LogFormat, known)
    raise ConfigError(f"$LLM_ROUTER_LOG_FORMAT: expected 'text' or 'json', got {override!r}")


# -- [tracing] (tracing/) ------------------------------------------------------------


def _tracing(t: Table, env: Mapping[str, str]) -> TracingConfig:
    """The ``[tracing]`` table; the standard ``OTEL_*`` variables can turn it on or off."""
    d = TracingConfig()
    enabled = t.take("enabled", bool, d.enabled)
    endpoint = t.take("endpoint", str, d.endpoint)
    service_name = t.take("service_name", str, d.service_name)
    ratio = t.take("sample_ratio", float, d.sample_ratio)
    t.done()
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{t.key('endpoint')}: expected an http:// or https:// URL")
    if not service_name:
        raise ConfigError(f"{t.key('service_name')}: must not be empty")
    if not 0 <= ratio <= 1:
        raise ConfigError(f"{t.key('sample_ratio')}: must be between 0 and 1, got {ratio!r}")
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoints = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    )
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    enabled = (enabled or exporter == "otlp" or any(endpoints)) and not (
        disabled or exporter == "none"
    )
    return TracingConfig(enabled, endpoint, service_name, ratio)


def _metrics(m: Table, env: Mapping[str, str]) -> MetricsConfig:
    d = MetricsConfig()
    metrics = MetricsConfig(
        # The file's key is read (and so known) even when the environment overrides it.
        redis_url=_env_or(env, "LLM_ROUTER_REDIS_URL", m.take("redis_url", str, "")),
        replica_id=_env_or(env, "LLM_ROUTER_REPLICA_ID", m.take("replica_id", str, "")),
        buffer_size=m.positive("buffer_size", int, d.buffer_size),
        stream_maxlen=m.positive("stream_maxlen", int, d.stream_maxlen),
        redis_timeout=m.positive("redis_timeout", float, d.redis_timeout),
        watcher_queue=m.positive("watcher_queue", int, d.watcher_queue),
        prometheus_listen=_env_or(
            env, "LLM_ROUTER_PROMETHEUS_LISTEN", m.take("prometheus_listen", str, "")
        ),
    )
    url = metrics.redis_url
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"{m.key('redis_url')}: expected redis://, rediss:// or unix:// URL, "
            f"got {without_credentials(url)!r}"
        )
    if metrics.prometheus_listen:
        listen, key = metrics.prometheus_listen, m.key("prometheus_listen")
        check_listen(listen, key, "127.0.0.1:9464", unix=False)
    m.done()
    return metrics


def _limits(t: Table) -> Limits:
    d = Limits()
    limits = Limits(
        max_messages=t.positive("max_messages", int, d.max_messages),
        max_message_chars=t.positive("max_message_chars", int, d.max_message_chars),
        max_schema_chars=t.positive("max_schema_chars", int, d.max_schema_chars),
        max_schema_depth=t.positive("max_schema_depth", int, d.max_schema_depth),
        max_context_chars=t.positive("max_context_chars", int, d.max_context_chars),
        max_answer_chars=t.positive("max_answer_chars", int, d.max_answer_chars),
    )
    t.done()
    return limits


def _breaker(t: Table) -> BreakerPolicy:
    d = BreakerPolicy()
    policy = BreakerPolicy(
        enabled=t.take("enabled", bool, d.enabled),
        failure_threshold=t.positive("failure_threshold", int, d.failure_threshold),
        cool_down_seconds=t.positive("cool_down_seconds", float, d.cool_down_seconds),
        max_cool_down_seconds=t.positive("max_cool_down_seconds", float, d.max_cool_down_seconds),
        when_all_open=t.choice("when_all_open", WhenAllOpen, d.when_all_open),
        shared=t.take("shared", bool, d.shared),
        probe_interval_seconds=t.positive(
            "probe_interval_seconds", float, d.probe_interval_seconds
        ),
        hang_fraction=t.positive("hang_fraction", float, d.hang_fraction),
    )
    if policy.max_cool_down_seconds < policy.cool_down_seconds:
        raise ConfigError(f"{t.key('max_cool_down_seconds')}: must be >= cool_down_seconds")
    if policy.hang_fraction > 1:
        raise ConfigError(f"{t.key('hang_fraction')}: must be <= 1, got {policy.hang_fraction!r}")
    t.done()
    return policy


def _auth(t: Table, env: Mapping[str, str]) -> AuthConfig:
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


def _tls(t: Table) -> TLSConfig:
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


def _validation(t: Table) -> ValidationPolicy:
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


def parse(data: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """Build a Config from parsed TOML (already a dict) and the environment."""
    root = Table(expand_env(dict(data), "", env), "")
    server = _server(root.table("server"), env)
    metrics = _metrics(root.table("metrics"), env)
    limits = _limits(root.table("limits"))
    breaker = _breaker(root.table("breaker"))
    auth, tls = _auth(root.table("auth"), env), _tls(root.table("tls"))
    validation = _validation(root.table("validation"))
    tracing = _tracing(root.table("tracing"), env)
    patterns = root.take("refusal_patterns", list, list(DEFAULT_REFUSAL_PATTERNS))
    if not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError("refusal_patterns: expected a list of non-empty strings")
    default_max_tokens = root.positive("default_max_tokens", int, Config.default_max_tokens)
    default_chain = root.take("default_chain", str, DEFAULT_CHAIN)
    has_chains = "chains" in root.data
    chains_table = root.table("chains")
    embedded = embedded_settings.read(root.table("embedded"), env)
    if has_chains:
        chains = read_chains(chains_table)
    else:
        chains = embedded_settings.with_last_resort(
            default_chains(env), embedded, DEFAULT_REPAIR_ATTEMPTS
        )
    chains_table.done()
    root.done()
    embedded_settings.check(chains, embedded)
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
        embedded=embedded,
        tracing=tracing,
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
