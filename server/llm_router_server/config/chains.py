"""Reading chains: the ``[chains]`` tables into ``ChainSpec``s, each model's keys checked
(provider, URL, credentials, repair budget, price), and the built-in chain used when the
file has no ``[chains]``. ``loader.py`` calls ``read_chains`` and ``default_chains``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from llm_router_server.config.model import (
    DEFAULT_CHAIN,
    DEFAULT_REPAIR_ATTEMPTS,
    MAX_REPAIR_ATTEMPTS,
    ProbeMode,
    ProviderChoice,
    RefusalPolicy,
)
from llm_router_server.config.table import Table
from llm_router_server.embedded import settings as embedded_settings
from llm_router_server.errors import ConfigError
from llm_router_server.safe_text import has_credentials, without_credentials
from llm_router_server.types import ChainSpec, ModelSpec

DEFAULT_OLLAMA_API_BASE = "http://127.0.0.1:11434"

MAX_TIMEOUT_SECONDS = 86_400.0
"""Upper bound of a model's ``timeout``."""


def default_chains(env: Mapping[str, str]) -> dict[str, ChainSpec]:
    """The seed's chain: local Qwen on Ollama, then Claude Haiku, then Claude Sonnet."""
    ollama = env.get("OLLAMA_API_BASE") or DEFAULT_OLLAMA_API_BASE
    check_url(ollama, "$OLLAMA_API_BASE")
    return {
        DEFAULT_CHAIN: ChainSpec(
            name=DEFAULT_CHAIN,
            models=(
                # The local model is free: its price is said here, never assumed.
                ModelSpec(
                    "ollama_chat/qwen2.5:7b",
                    timeout=8.0,
                    api_base=ollama,
                    repair_attempts=DEFAULT_REPAIR_ATTEMPTS,
                    price_per_mtok=(0.0, 0.0),
                ),
                ModelSpec(
                    "claude-haiku-4-5-20251001",
                    timeout=30.0,
                    repair_attempts=DEFAULT_REPAIR_ATTEMPTS,
                ),
                ModelSpec(
                    "claude-sonnet-4-6", timeout=30.0, repair_attempts=DEFAULT_REPAIR_ATTEMPTS
                ),
            ),
        )
    }


def _model(raw: Any, path: str) -> ModelSpec:
    t = Table(raw, path)
    name = t.take("model", str, "")
    if not name:
        raise ConfigError(f"{t.key('model')}: required, e.g. 'ollama_chat/qwen2.5:7b'")
    spec = ModelSpec(
        model=name,
        timeout=t.within("timeout", float, 30.0, 0, MAX_TIMEOUT_SECONDS, above=True),
        api_base=t.take("api_base", str, "") or None,
        structured_output=t.take("structured_output", bool, True),
        params=t.take("params", dict, {}),
        provider=t.choice("provider", ProviderChoice, ModelSpec.provider),
        max_concurrency=t.take("max_concurrency", int, 0),
        warm_up=t.take("warm_up", bool, False),
        repair_attempts=t.take("repair_attempts", int, DEFAULT_REPAIR_ATTEMPTS),
        constraint_notes=t.take("constraint_notes", bool, True),
        price_per_mtok=_price(t.table("price_per_mtok")),
        probe=t.choice("probe", ProbeMode, ModelSpec.probe),
    )
    if spec.max_concurrency < 0:
        raise ConfigError(f"{t.key('max_concurrency')}: must be >= 0, got {spec.max_concurrency}")
    if not 0 <= spec.repair_attempts <= MAX_REPAIR_ATTEMPTS:
        raise ConfigError(
            f"{t.key('repair_attempts')}: must be 0..{MAX_REPAIR_ATTEMPTS}, "
            f"got {spec.repair_attempts}"
        )
    t.done()
    _check_provider(spec, t.key("provider"))
    if spec.api_base == embedded_settings.EMBEDDED_API_BASE:
        if spec.price_per_mtok is None:  # it runs here: free unless the file prices it
            spec = replace(spec, price_per_mtok=embedded_settings.FREE)
    elif spec.api_base is not None:
        check_url(spec.api_base, t.key("api_base"))
        _check_credentials(spec, t.key("api_base"))
    return spec


def _price(t: Table) -> tuple[float, float] | None:
    """``price_per_mtok = { input = 1.0, output = 5.0 }``: USD per million tokens, both
    required; an empty table (the default) leaves the price to litellm's table."""
    if not t.data:
        return None
    rates = []
    for side in ("input", "output"):
        if side not in t.data:
            raise ConfigError(f"{t.key(side)}: required (USD per million {side} tokens)")
        rate = t.take(side, float, 0.0)
        if not (math.isfinite(rate) and rate >= 0):
            raise ConfigError(f"{t.key(side)}: must be a number >= 0, got {rate!r}")
        rates.append(rate)
    t.done()
    return rates[0], rates[1]


def _check_provider(spec: ModelSpec, key: str) -> None:
    """``"native"`` only for a model the native path can serve."""
    from llm_router_server.providers.protocols import unsupported

    why = unsupported(spec) if spec.provider == "native" else None
    if why is not None:
        raise ConfigError(f"{key}: 'native' cannot serve this model: {why}")


def check_url(url: str, key: str) -> None:
    """An API base must be an http:// or https:// URL with a host and a valid port."""
    parts = urlsplit(url)
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "expected an http:// or https:// URL"
    elif not parts.hostname:
        problem = "the URL has no host"
    else:
        try:
            parts.port  # noqa: B018 (raises ValueError for a port that is not one)
        except ValueError:
            problem = "the URL's port is not a number from 0 to 65535"
    if problem is not None:
        # The URL is shown without credentials: the message goes to logs and terminals.
        raise ConfigError(f"{key}: {problem}, got {without_credentials(url)!r}")


def _check_credentials(spec: ModelSpec, key: str) -> None:
    """Credentials in an api_base URL only where they reach the model."""
    from llm_router_server.providers.protocols import url_credentials_problem

    if spec.api_base is not None and has_credentials(spec.api_base):
        why = url_credentials_problem(spec)
        if why is not None:
            raise ConfigError(f"{key}: user:password@ in the URL cannot work here: {why}")


def read_chains(t: Table) -> dict[str, ChainSpec]:
    chains: dict[str, ChainSpec] = {}
    if not t.data:
        raise ConfigError(
            "chains: the table is empty; define a chain ([chains.NAME] with models), or leave "
            "[chains] out to run the built-in chain"
        )
    for name in list(t.data):
        chain = t.table(name)
        raw_models = chain.take("models", list, [])
        if not raw_models:
            raise ConfigError(f"{chain.key('models')}: a chain needs at least one model")
        models = tuple(_model(m, f"{chain.key('models')}[{i}]") for i, m in enumerate(raw_models))
        hedge = chain.take("hedge_after_ms", float, 0.0)
        if hedge < 0:
            raise ConfigError(f"{chain.key('hedge_after_ms')}: must be >= 0, got {hedge!r}")
        policy = chain.choice("refusal_policy", RefusalPolicy, ChainSpec.refusal_policy)
        chain.done()
        chains[name] = ChainSpec(
            name=name, models=models, hedge_after_ms=hedge, refusal_policy=policy
        )
    return chains
