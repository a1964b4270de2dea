"""The ``[embedded]`` configuration table, and how a chain names the embedded model.

A chain model whose ``api_base`` is ``"embedded"`` is served by the embedded
llama.cpp server (``process.py``) through the OpenAI-compatible path like any
``openai/`` model; the server fills in the child's loopback URL and API key
at start (``bind``). With ``enabled = true`` (by default ``$LLM_ROUTER_EMBEDDED``,
which ``./scripts/serve`` sets to on) and no ``[chains]`` in the file, the seed's
chain gets it as its last model.
A chain that names it while it is not enabled is a configuration error, so
``enabled = false`` switches it off everywhere.

Pure apart from ``model.locate`` (a file lookup): reads a config table,
builds ``ModelSpec``s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from llm_router_server.embedded import model
from llm_router_server.errors import ConfigError
from llm_router_server.types import ChainSpec, ModelSpec

EMBEDDED_API_BASE = "embedded"
"""The ``api_base`` that names the embedded model in a chain."""
SWITCH_VARIABLE = "LLM_ROUTER_EMBEDDED"
_ON, _OFF = ("1", "on", "true", "yes"), ("0", "off", "false", "no")

T = TypeVar("T")


@dataclass(frozen=True)
class EmbeddedConfig:
    """The embedded local model: llama.cpp's server as a child process of the router."""

    enabled: bool = False
    """Allow chains to name it (``api_base = "embedded"``) and, when the file has no
    ``[chains]``, append it to the seed's chain as the last resort. Default:
    ``$LLM_ROUTER_EMBEDDED`` (on/off; ``./scripts/serve`` sets on), else off."""
    model_path: str = ""
    """The GGUF file; empty: SmolLM2-135M-Instruct, installed by ``scripts/setup``."""
    threads: int = 2
    """CPU threads the model decodes with."""
    ctx_size: int = 2048
    """Context window in tokens (prompt plus answer)."""
    timeout: float = 30.0
    """Seconds the seed chain's last resort may take per call."""
    max_tokens: int = 512
    """``max_tokens`` of the seed chain's last resort (a small model may ramble)."""
    start_timeout: float = 60.0
    """Seconds the server may take to load the model, at start and at each restart."""
    port: int = 0
    """Loopback port of the child's HTTP server; 0: a free one, chosen at start."""


class Table(Protocol):
    """What ``config.py`` hands over: one TOML table, read key by key."""

    def key(self, name: str) -> str: ...
    def take(self, name: str, kind: type[T], default: T) -> T: ...
    def positive(self, name: str, kind: type[T], default: T) -> T: ...
    def done(self) -> None: ...


def read(t: Table, env: Mapping[str, str]) -> EmbeddedConfig:
    """The ``[embedded]`` table; ``$LLM_ROUTER_EMBEDDED`` is the default of ``enabled``."""
    d = EmbeddedConfig()
    switch = env.get(SWITCH_VARIABLE, "").strip().lower()
    if switch and switch not in _ON + _OFF:
        raise ConfigError(f"{SWITCH_VARIABLE}: expected on or off, got {switch!r}")
    cfg = EmbeddedConfig(
        enabled=t.take("enabled", bool, switch in _ON if switch else d.enabled),
        model_path=t.take("model_path", str, d.model_path),
        threads=t.positive("threads", int, d.threads),
        ctx_size=t.positive("ctx_size", int, d.ctx_size),
        timeout=t.positive("timeout", float, d.timeout),
        max_tokens=t.positive("max_tokens", int, d.max_tokens),
        start_timeout=t.positive("start_timeout", float, d.start_timeout),
        port=t.take("port", int, d.port),
    )
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"{t.key('port')}: expected 0-65535, got {cfg.port}")
    t.done()
    return cfg


def model_name(cfg: EmbeddedConfig) -> str:
    """The model string of the seed chain's last resort: ``openai/`` + the GGUF file's stem."""
    return "openai/" + model.locate(cfg.model_path).stem


FREE = (0.0, 0.0)
"""The embedded model's price per million tokens: it runs here, so it is free (a chain's
entry that gives it a ``price_per_mtok`` overrides this)."""


def last_resort(cfg: EmbeddedConfig, repair_attempts: int = 0) -> ModelSpec:
    """The embedded model as the seed's chain names it (greedy decoding: answers repeat)."""
    params = {"max_tokens": cfg.max_tokens, "temperature": 0}
    return ModelSpec(
        model_name(cfg),
        cfg.timeout,
        api_base=EMBEDDED_API_BASE,
        params=params,
        repair_attempts=repair_attempts,
        price_per_mtok=FREE,
    )


def with_last_resort(
    chains: dict[str, ChainSpec], cfg: EmbeddedConfig, repair_attempts: int = 0
) -> dict[str, ChainSpec]:
    """The seed's chains, with the embedded model last when it is enabled."""
    if not cfg.enabled:
        return chains
    spec = last_resort(cfg, repair_attempts)
    return {name: replace(c, models=(*c.models, spec)) for name, c in chains.items()}


def uses(chains: Mapping[str, ChainSpec]) -> bool:
    """Whether any chain names the embedded model."""
    return any(m.api_base == EMBEDDED_API_BASE for c in chains.values() for m in c.models)


def check(chains: Mapping[str, ChainSpec], cfg: EmbeddedConfig) -> None:
    """A chain may name the embedded model only when it is enabled and installed."""
    for chain in chains.values():
        for i, spec in enumerate(chain.models):
            if spec.api_base != EMBEDDED_API_BASE:
                continue
            key = f"chains.{chain.name}.models[{i}]"
            if not cfg.enabled:
                raise ConfigError(
                    f"{key}: api_base 'embedded' names the embedded model, which is off "
                    f"(embedded.enabled = false, or {SWITCH_VARIABLE}=off)"
                )
            if not spec.model.startswith("openai/"):
                raise ConfigError(
                    f"{key}: the embedded model speaks the OpenAI protocol: "
                    f"model must be 'openai/NAME', got {spec.model!r}"
                )
    if cfg.enabled and uses(chains):
        model.check_server_installed()
        model.locate(cfg.model_path)


def bind(chains: Mapping[str, ChainSpec], api_base: str, api_key: str) -> dict[str, ChainSpec]:
    """The chains with the running server's URL and key in every model that names it."""

    def bound(spec: ModelSpec) -> ModelSpec:
        if spec.api_base != EMBEDDED_API_BASE:
            return spec
        return replace(spec, api_base=api_base, params={**spec.params, "api_key": api_key})

    return {n: replace(c, models=tuple(bound(m) for m in c.models)) for n, c in chains.items()}
