"""Which model strings the native HTTP path speaks, and how: decided once per model.

``endpoint_for(spec)`` reads a ``ModelSpec`` the way litellm would and returns
an ``Endpoint`` (wire protocol, URL, upstream model name, headers, the fixed
part of the body) for the three wire protocols of the default chain, or None
when the native path does not speak it (then litellm serves the model):

==========================  ====================================================
model string                wire protocol
==========================  ====================================================
``ollama_chat/NAME``        Ollama ``POST {api_base}/api/chat``
``anthropic/NAME``,         Anthropic Messages ``POST {api_base}/v1/messages``
``claude-...`` (bare)
``openai/NAME``             OpenAI chat completions ``POST {api_base}/chat/completions``
==========================  ====================================================

A model is native only when every key of its ``params`` is in that protocol's
``PARAMS`` table below (the litellm argument names, translated as litellm
translates them). Everything else, ``ollama/`` (litellm's prompt templates)
included, stays with litellm. Pure: imports no HTTP or provider library, so
the configuration can check ``provider = "native"`` at start-up.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from llm_router_server.types import ModelSpec


class Wire(enum.Enum):
    OLLAMA_CHAT = "ollama_chat"
    ANTHROPIC = "anthropic"
    OPENAI = "openai"


PARAMS: Mapping[Wire, Mapping[str, str]] = {
    # litellm argument -> key in Ollama's "options" (litellm's OllamaChatConfig mapping).
    Wire.OLLAMA_CHAT: {
        "max_tokens": "num_predict",
        "max_completion_tokens": "num_predict",
        "temperature": "temperature",
        "top_p": "top_p",
        "seed": "seed",
        "stop": "stop",
        "frequency_penalty": "repeat_penalty",
    },
    # litellm argument -> top-level key of the Messages body ("api_key" -> x-api-key).
    Wire.ANTHROPIC: {
        "max_tokens": "max_tokens",
        "max_completion_tokens": "max_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "api_key": "",
    },
    # litellm argument -> top-level key of the chat-completions body ("api_key" -> Bearer).
    Wire.OPENAI: {
        "max_tokens": "max_tokens",
        "max_completion_tokens": "max_completion_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "seed": "seed",
        "stop": "stop",
        "frequency_penalty": "frequency_penalty",
        "presence_penalty": "presence_penalty",
        "api_key": "",
    },
}

ANTHROPIC_VERSION = "2023-06-01"
ANTHROPIC_STRUCTURED_BETA = "structured-outputs-2025-11-13"


@dataclass(frozen=True)
class Endpoint:
    """Everything about one model's calls that does not change from call to call."""

    wire: Wire
    url: str
    """The full URL of the chat endpoint."""
    api_base: str
    """The configured (or default) base, for error reasons."""
    origin: str
    """``scheme://host:port`` of ``url``: calls to one origin share one HTTP session."""
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    """The fixed part of each request body: model, max_tokens, options, ..."""


def wire_of(model: str) -> tuple[Wire, str] | None:
    """The wire protocol and upstream model name of a litellm model string, if native."""
    prefix, _, name = model.partition("/")
    if name and prefix == "ollama_chat":
        return Wire.OLLAMA_CHAT, name
    if name and prefix == "anthropic":
        return Wire.ANTHROPIC, name
    if name and prefix == "openai":
        return Wire.OPENAI, name
    if not name and model.startswith("claude-"):
        return Wire.ANTHROPIC, model
    return None


def unsupported(spec: ModelSpec) -> str | None:
    """Why the native path cannot serve ``spec`` (None when it can)."""
    found = wire_of(spec.model)
    if found is None:
        return (
            f"model {spec.model!r}: the native path speaks only ollama_chat/, anthropic/ "
            "(and bare claude-...) and openai/ models"
        )
    extra = sorted(set(spec.params) - set(PARAMS[found[0]]))
    if extra:
        return f"params {', '.join(extra)} are not supported by the native {found[0].value} path"
    return None


_KEY_VARIABLES = {Wire.ANTHROPIC: "ANTHROPIC_API_KEY", Wire.OPENAI: "OPENAI_API_KEY"}


def missing_api_key(spec: ModelSpec, env: Mapping[str, str]) -> str | None:
    """The environment variable a cloud model needs and does not have (None: it has a key,
    needs none, or is a model string this module does not know)."""
    found = wire_of(spec.model)
    variable = _KEY_VARIABLES.get(found[0]) if found is not None else None
    if variable is None or spec.params.get("api_key") or env.get(variable):
        return None
    return variable


def endpoint_for(
    spec: ModelSpec, default_max_tokens: int, env: Mapping[str, str] | None = None
) -> Endpoint | None:
    """The native endpoint for ``spec``, or None when litellm must serve it."""
    if unsupported(spec) is not None:
        return None
    env = os.environ if env is None else env
    wire, name = wire_of(spec.model)  # type: ignore[misc]  # checked by unsupported()
    params = dict(spec.params)
    if "max_tokens" not in params and "max_completion_tokens" not in params:
        params["max_tokens"] = default_max_tokens
    table = PARAMS[wire]
    headers = {"Content-Type": "application/json"}
    body: dict[str, Any] = {"model": name}
    if wire is Wire.OLLAMA_CHAT:
        base = spec.api_base or env.get("OLLAMA_API_BASE") or "http://localhost:11434"
        url = base.rstrip("/") + "/api/chat"
        body["options"] = {table[k]: v for k, v in params.items()}
        body["stream"] = False
    elif wire is Wire.ANTHROPIC:
        base = (
            spec.api_base
            or env.get("ANTHROPIC_API_BASE")
            or env.get("ANTHROPIC_BASE_URL")
            or "https://api.anthropic.com"
        )
        url = base.rstrip("/")
        if not url.endswith("/v1/messages"):
            url += "/v1/messages"
        key = params.pop("api_key", None) or env.get("ANTHROPIC_API_KEY", "")
        headers.update({"anthropic-version": ANTHROPIC_VERSION, "x-api-key": str(key)})
        body.update({table[k]: v for k, v in params.items()})
    else:
        base = (
            spec.api_base
            or env.get("OPENAI_BASE_URL")
            or env.get("OPENAI_API_BASE")
            or "https://api.openai.com/v1"
        )
        url = base.rstrip("/") + "/chat/completions"
        key = params.pop("api_key", None) or env.get("OPENAI_API_KEY", "")
        headers["Authorization"] = f"Bearer {key}"
        body.update({table[k]: v for k, v in params.items()})
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return Endpoint(wire=wire, url=url, api_base=base, origin=origin, headers=headers, body=body)
