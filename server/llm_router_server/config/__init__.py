"""Configuration: frozen dataclasses loaded once at start-up from TOML plus environment.

``model.py`` is the shape (one dataclass per table, a docstring per key, the enumerated
options as ``Literal`` types); ``loader.py`` reads the file and the environment into it
(the chains and their models in ``chains.py``), through ``table.py``'s fail-fast reader
that names the dotted key of any bad value.
See ``config.example.toml`` for every key with its meaning.
"""

from llm_router_server.config.chains import DEFAULT_OLLAMA_API_BASE, default_chains
from llm_router_server.config.loader import check_listen, load, parse
from llm_router_server.config.model import (
    DEFAULT_CHAIN,
    AuthConfig,
    BreakerPolicy,
    Config,
    EventLoop,
    Limits,
    LogFormat,
    MetricsConfig,
    ProbeMode,
    ProviderChoice,
    RefusalPolicy,
    ServerConfig,
    TLSConfig,
    TracingConfig,
    WhenAllOpen,
)

__all__ = [
    "DEFAULT_CHAIN",
    "DEFAULT_OLLAMA_API_BASE",
    "AuthConfig",
    "BreakerPolicy",
    "Config",
    "EventLoop",
    "Limits",
    "LogFormat",
    "MetricsConfig",
    "ProbeMode",
    "ProviderChoice",
    "RefusalPolicy",
    "ServerConfig",
    "TLSConfig",
    "TracingConfig",
    "WhenAllOpen",
    "check_listen",
    "default_chains",
    "load",
    "parse",
]
