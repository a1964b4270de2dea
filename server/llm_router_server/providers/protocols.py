"""Which model strings the native HTTP path speaks, and how: decided once per model.

Each wire protocol lives in its own module, as one object implementing
``WireProtocol`` below: its endpoint and params (``ollama.py``, ``anthropic.py``,
``openai.py``), its request body and its answer parsing. ``WIRES`` is the
registry, keyed by litellm's model prefix:

==========================  ====================================================
model string                wire protocol
==========================  ====================================================
``ollama_chat/NAME``        Ollama ``POST {api_base}/api/chat``
``anthropic/NAME``,         Anthropic Messages ``POST {api_base}/v1/messages``
``claude-...`` (bare)
``openai/NAME``             OpenAI chat completions ``POST {api_base}/chat/completions``
==========================  ====================================================

``endpoint_for(spec)`` reads a ``ModelSpec`` the way litellm would and returns
an ``Endpoint`` (wire protocol, URL, upstream model name, headers, the fixed
part of the body), or None when the native path does not speak it (then
litellm serves the model). A model is native only when every key of its
``params`` is in its protocol's ``params`` table (the litellm argument names,
translated as litellm translates them). Everything else, ``ollama/`` (litellm's
prompt templates) included, stays with litellm. Pure: imports no HTTP or
provider library, so the configuration can check ``provider = "native"`` at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from llm_router_server.providers.anthropic import Anthropic
from llm_router_server.providers.ollama import OllamaChat
from llm_router_server.providers.openai import OpenAIChat
from llm_router_server.providers.shaping import with_default_max_tokens
from llm_router_server.types import Completion, CompletionRequest, ModelSpec


class WireProtocol(Protocol):
    """One wire protocol of the native path: its endpoint, request body and answers."""

    name: str
    """litellm's model prefix (``NAME/model``), also used in reasons."""
    bare_prefixes: tuple[str, ...]
    """Model strings without a ``NAME/`` prefix that this protocol serves (``claude-``)."""
    params: Mapping[str, str]
    """litellm argument -> where this protocol's body carries it (the native params)."""
    base_variables: tuple[str, ...]
    """Environment variables for the API base, first set wins, as litellm reads them."""
    default_base: str
    key_variable: str | None
    """The environment variable of the API key (None: the protocol needs no key)."""
    serves_schema: bool
    """Whether the native path sends a caller's schema (False: litellm serves those calls)."""
    unenforced: frozenset[str]
    """JSON Schema keywords the provider's structured-output decoder is known not to enforce
    (said in words in the request when a model's ``constraint_notes`` is on)."""

    def url(self, base: str) -> str:
        """The chat endpoint's URL for an API base (without a trailing slash)."""

    def headers(self, key: str) -> dict[str, str]:
        """The headers beyond ``Content-Type``, given the API key ("" when none is set)."""

    def call_headers(
        self, headers: Mapping[str, str], body: Mapping[str, Any]
    ) -> Mapping[str, str]:
        """One call's headers: the endpoint's, plus any its body needs (a beta flag)."""

    def fixed_body(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The part of every body for upstream model ``name``; ``options`` are translated params."""

    def body(self, fixed: Mapping[str, Any], request: CompletionRequest) -> dict[str, Any]:
        """One call's body: the fixed part plus the messages (and the schema, if served)."""

    def completion(self, answer: Mapping[str, Any]) -> Completion:
        """The ``Completion`` of a decoded JSON answer, or a ``ProviderError``."""


WIRES: Mapping[str, WireProtocol] = {
    wire.name: wire for wire in (OllamaChat(), Anthropic(), OpenAIChat())
}
"""The native path's wire protocols by litellm model prefix."""

"""Values of a model's ``provider`` key (``ModelSpec.provider``)."""


@dataclass(frozen=True)
class Endpoint:
    """Everything about one model's calls that does not change from call to call."""

    wire: WireProtocol
    url: str
    """The full URL of the chat endpoint."""
    api_base: str
    """The configured (or default) base, for error reasons."""
    origin: str
    """``scheme://host:port`` of ``url``: calls to one origin share one HTTP session."""
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    """The fixed part of each request body: model, max_tokens, options, ..."""


def wire_of(model: str) -> tuple[WireProtocol, str] | None:
    """The wire protocol and upstream model name of a litellm model string, if native."""
    prefix, _, name = model.partition("/")
    if name:
        wire = WIRES.get(prefix)
        return None if wire is None else (wire, name)
    for wire in WIRES.values():
        if model.startswith(wire.bare_prefixes):
            return wire, model
    return None


def unsupported(spec: ModelSpec) -> str | None:
    """Why the native path cannot serve ``spec`` (None when it can)."""
    found = wire_of(spec.model)
    if found is None:
        return (
            f"model {spec.model!r}: the native path speaks only ollama_chat/, anthropic/ "
            "(and bare claude-...) and openai/ models"
        )
    extra = sorted(set(spec.params) - set(found[0].params))
    if extra:
        return f"params {', '.join(extra)} are not supported by the native {found[0].name} path"
    return None


def unenforced_keywords(spec: ModelSpec) -> frozenset[str]:
    """The schema keywords ``spec``'s decoder is known to drop, on either provider path
    (litellm's ``ollama/`` models reach Ollama's decoder too); empty when none are known."""
    if spec.model.startswith("ollama/"):
        return WIRES["ollama_chat"].unenforced
    found = wire_of(spec.model)
    return found[0].unenforced if found is not None else frozenset()


def url_credentials_problem(spec: ModelSpec) -> str | None:
    """Why ``user:password@`` in ``spec.api_base`` cannot reach the model (None: it can,
    as HTTP Basic authentication on the native path of a protocol that leaves the
    ``Authorization`` header free: Ollama, Anthropic)."""
    found = wire_of(spec.model)
    if spec.provider == "litellm" or found is None or unsupported(spec) is not None:
        return (
            "only the native path (ollama_chat/, anthropic/ and claude- models) sends URL "
            'credentials; litellm refuses them ("Cannot combine AUTHORIZATION header with '
            'AUTH argument")'
        )
    wire = found[0]
    if "Authorization" in wire.headers("key"):
        return (
            f"the {wire.name} protocol sends the API key in the Authorization header, which "
            "URL credentials would replace; give the upstream's key as params.api_key instead"
        )
    return None


def missing_api_key(spec: ModelSpec, env: Mapping[str, str]) -> str | None:
    """The environment variable a cloud model needs and does not have (None: it has a key,
    needs none, or is a model string this module does not know)."""
    found = wire_of(spec.model)
    variable = found[0].key_variable if found is not None else None
    if variable is None or spec.params.get("api_key") or env.get(variable):
        return None
    return variable


def endpoint_for(
    spec: ModelSpec, default_max_tokens: int, env: Mapping[str, str] | None = None
) -> Endpoint | None:
    """The native endpoint for ``spec``, or None when litellm must serve it."""
    found = wire_of(spec.model)
    if found is None or unsupported(spec) is not None:
        return None
    env = os.environ if env is None else env
    wire, name = found
    params = with_default_max_tokens(spec.params, default_max_tokens)
    variable = wire.key_variable
    key = params.pop("api_key", None) or (env.get(variable, "") if variable else "")
    base = (
        spec.api_base
        or next((env[v] for v in wire.base_variables if env.get(v)), None)
        or wire.default_base
    )
    url = wire.url(base.rstrip("/"))
    parts = urlsplit(url)
    return Endpoint(
        wire=wire,
        url=url,
        api_base=base,
        origin=f"{parts.scheme}://{parts.netloc}",
        headers={"Content-Type": "application/json", **wire.headers(str(key))},
        body=wire.fixed_body(name, {wire.params[k]: v for k, v in params.items()}),
    )
