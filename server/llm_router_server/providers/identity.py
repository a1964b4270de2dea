"""What a configured model is, for observability: its provider, upstream name, host, and
whether it runs locally or in a cloud. Pure: decided from the ``ModelSpec`` alone, once.

Metrics (the ``locality`` label, the live page) and traces (the GenAI attributes
``gen_ai.provider.name``, ``gen_ai.request.model``, ``server.address``) read it here,
so they agree.

Local means "runs on hardware we operate, no per-token bill":

- every model of a self-hosted server's protocol (``ollama/``, ``ollama_chat/``,
  ``hosted_vllm/``, ``vllm/``, ``llamafile/``, ``lm_studio/``);
- never a model that only its vendor runs (Anthropic's Claude), even behind a proxy on
  a private address;
- any other model (``openai/`` against vLLM or llama.cpp's server, say) whose
  ``api_base`` points at a loopback, private or link-local address, ``localhost``, a
  single-label host name (a Kubernetes service such as ``vllm``) or a name under
  ``.local``, ``.internal`` or ``.svc``.

Everything else is cloud.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from llm_router_server.providers.protocols import wire_of
from llm_router_server.types import ModelSpec

Locality = Literal["local", "cloud"]

_PROVIDER_NAMES = {"ollama_chat": "ollama", "ollama": "ollama"}
"""litellm prefixes whose GenAI provider name differs from the prefix."""
_LOCAL_PROVIDERS = frozenset({"ollama", "hosted_vllm", "vllm", "llamafile", "lm_studio"})
_VENDOR_ONLY = frozenset({"anthropic"})
_LOCAL_SUFFIXES = (".local", ".internal", ".svc", ".cluster.local", ".localhost")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class ModelIdentity:
    """A configured model as dashboards and traces name it."""

    provider: str
    """The GenAI provider name: ``ollama``, ``anthropic``, ``openai``, else litellm's prefix."""
    name: str
    """The model name the upstream knows (the model string without its prefix)."""
    address: str
    """Host of the upstream API; empty when unknown (litellm's default for the provider)."""
    port: int
    """Port of the upstream API; 0 when unknown."""
    locality: Locality


def identify(spec: ModelSpec) -> ModelIdentity:
    """Who serves ``spec``, where, and whether it is local."""
    found = wire_of(spec.model)
    prefix, _, rest = spec.model.partition("/")
    if found is not None:
        wire, name = found
        provider = _PROVIDER_NAMES.get(wire.name, wire.name)
        base = spec.api_base or wire.default_base
    else:
        provider = _PROVIDER_NAMES.get(prefix, prefix) if rest else "unknown"
        name = rest or spec.model
        base = spec.api_base or ""
    parts = urlsplit(base) if base else None
    address = (parts.hostname or "") if parts is not None else ""
    port = 0
    if parts is not None:
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        except ValueError:
            port = 0
    local = provider in _LOCAL_PROVIDERS or (
        provider not in _VENDOR_ONLY and bool(spec.api_base) and _local_host(address)
    )
    return ModelIdentity(provider, name, address, port, "local" if local else "cloud")


def _local_host(host: str) -> bool:
    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith(_LOCAL_SUFFIXES)
    return ip.is_loopback or ip.is_private or ip.is_link_local
