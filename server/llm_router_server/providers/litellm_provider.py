"""The one ``Provider`` over ``litellm.acompletion``; the only module that imports litellm.

``LiteLLMProvider.complete`` makes one ``litellm.acompletion`` call per attempt
and translates whatever it raises into the ``ProviderError`` tree in one place,
``_translate`` (most specific first, ``raise ... from exc``; model: httpx
``map_httpcore_exceptions``). litellm picks its exception class by provider, not
by fault (the same HTTP 503 is ``ServiceUnavailableError`` from Ollama and
``InternalServerError`` with ``status_code`` 500 from Anthropic; a refused
connection is ``APIConnectionError`` from Ollama and ``InternalServerError``
from Anthropic), so the fault is read from the exception's cause chain: a
timeout, an httpx transport error, a JSON decode error, or the HTTP response.

What it neutralises in litellm (measured with litellm 1.110.2):

- Import would fetch the model-cost map from the internet, and the first
  structured Anthropic call a beta-header config, unless ``LITELLM_OFFLINE_MODE``
  is set before import: set here with ``setdefault``.
- ``ollama/`` and ``ollama_chat/`` models not in litellm's cost map trigger a
  blocking ``POST /api/show`` per call (``ollama_chat/``: on the event loop, to
  api_base, without the call's timeout; ``ollama/``: in a worker thread, to
  ``localhost:11434`` whatever api_base says). Registering the model with
  ``litellm.register_model`` once stops both; ``register_model`` itself asks
  ``localhost:11434`` about a model it does not know, so it is seeded into
  ``litellm.model_cost`` first.
- ``openai/`` models retry twice inside the OpenAI SDK: ``max_retries=0``.
- Anthropic's ``max_tokens`` defaults to the model's maximum (64000 for Haiku
  4.5): ``default_max_tokens`` is sent unless ``model.params`` sets it.
- Claude's refusal (HTTP 200, ``stop_reason: refusal``, empty content) and
  OpenAI's ``content_filter`` come back as an empty answer with
  ``finish_reason == "content_filter"``: raised as ``ProviderRefusalError``.
- Error texts may carry tracebacks, file paths and API keys: reasons are
  cleaned to one bounded line.

The request (default ``max_tokens``, messages, ``response_format``) and the
answer checks (refusal, empty answer, token totals) are the native path's,
from ``shaping.py``.
"""

from __future__ import annotations

import os

# Before litellm is imported: no model-cost map or header config from the internet.
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import litellm
import openai
from litellm.exceptions import (
    APIConnectionError,
    APIError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    Timeout,
)
from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

from llm_router_server.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderRefusalError,
    ProviderStatusError,
    ProviderUnreachableError,
)
from llm_router_server.providers import shaping
from llm_router_server.providers.reasons import (
    clean,
    connection_reason,
    error_detail,
    retry_after,
    status_error,
    status_reason,
    timeout_error,
)
from llm_router_server.types import Completion, CompletionRequest, ModelSpec

__all__ = ["LiteLLMProvider", "clean"]

litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners on errors

# litellm gives its loggers their own stderr handler at INFO and logs every call twice over;
# leave handlers to the application and keep only warnings (LITELLM_LOG=DEBUG restores detail).
for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
    logging.getLogger(_name).handlers.clear()
    logging.getLogger(_name).setLevel(os.environ.get("LITELLM_LOG", "WARNING").upper())

_OLLAMA_PREFIXES = ("ollama/", "ollama_chat/")
_WARM_MODELS = ("ollama_chat/warm", "ollama/warm", "anthropic/claude-warm", "openai/gpt-warm")


class LiteLLMProvider:
    """Calls a model once through ``litellm.acompletion``.

    ``ModelSpec.model`` goes to litellm unchanged; ``api_base``, ``params`` and the
    request's timeout go with it. API keys come from litellm's usual environment
    variables (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``) or ``params``.
    """

    def __init__(self, *, default_max_tokens: int = 4096) -> None:
        self.default_max_tokens = default_max_tokens
        """Sent as ``max_tokens`` unless ``params`` sets it or ``max_completion_tokens``."""
        self._registered: set[str] = set()

    async def start(self) -> None:
        """Warm litellm's lazy imports with offline mock calls; no connection is made."""
        messages = [{"role": "user", "content": "warm-up"}]
        for model in _WARM_MODELS:
            if model.startswith(_OLLAMA_PREFIXES):
                self._register(model)
            await litellm.acompletion(model=model, messages=messages, mock_response="ok")

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        kwargs = self._arguments(model, request)
        try:
            async with asyncio.timeout(request.timeout):
                response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            raise _translate(exc, model, request.timeout) from exc
        return _completion(response)

    async def aclose(self) -> None:
        """Close the HTTP clients litellm caches (they would leak sockets otherwise)."""
        await close_litellm_async_clients()  # type: ignore[no-untyped-call]  # untyped in litellm

    def _arguments(self, model: ModelSpec, request: CompletionRequest) -> dict[str, Any]:
        if model.model.startswith(_OLLAMA_PREFIXES):
            self._register(model.model)
        kwargs: dict[str, Any] = {
            "messages": shaping.messages(request.messages),
            "max_retries": 0,  # the OpenAI SDK retries twice by default
            **shaping.with_default_max_tokens(model.params, self.default_max_tokens),
        }
        if request.schema is not None:
            kwargs["response_format"] = shaping.response_format(request.schema)
        if request.headers:  # the trace context (traceparent) goes on to the provider
            kwargs["extra_headers"] = {**kwargs.get("extra_headers", {}), **request.headers}
        kwargs.update(model=model.model, timeout=request.timeout)
        if model.api_base is not None:
            kwargs["api_base"] = model.api_base
        return kwargs

    def _register(self, name: str) -> None:
        """Describe an Ollama model to litellm so it does not ask ``/api/show`` about it."""
        if name in self._registered:
            return
        entry = {
            "litellm_provider": name.split("/", 1)[0],
            "mode": "chat",
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "cache_creation_input_token_cost": 0.0,
            "cache_read_input_token_cost": 0.0,
        }
        # register_model itself looks the model up first, which for an unknown Ollama
        # model means a blocking /api/show to localhost:11434: seed the map so it is known.
        litellm.model_cost.setdefault(name, dict(entry))
        litellm.register_model({name: entry})
        self._registered.add(name)


def _completion(response: object) -> Completion:
    if not isinstance(response, litellm.ModelResponse) or not response.choices:
        raise shaping.malformed("no choices")
    choice = response.choices[0]
    usage = getattr(response, "usage", None)
    return shaping.completion(
        getattr(getattr(choice, "message", None), "content", None),
        getattr(choice, "finish_reason", None),
        shaping.usage(
            getattr(usage, "prompt_tokens", None),
            getattr(usage, "completion_tokens", None),
            getattr(usage, "total_tokens", None),
        ),
        getattr(response, "model", None),
    )


# -- exception translation: the one place foreign exceptions become ProviderErrors ---------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (explicit, else implicit), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _translate(exc: Exception, model: ModelSpec, timeout: float) -> ProviderError:
    """Map an exception from a litellm call to a ``ProviderError``; most specific first."""
    chain = list(_chain(exc))
    if any(isinstance(e, TimeoutError | httpx.TimeoutException | Timeout) for e in chain):
        return timeout_error(timeout)
    transport = next((e for e in chain if isinstance(e, httpx.TransportError | OSError)), None)
    if transport is not None:
        never_connected = isinstance(transport, httpx.ConnectError | ConnectionRefusedError)
        error = ProviderUnreachableError if never_connected else ProviderConnectionError
        return error(_connection_reason(transport, model))
    decode = next((e for e in chain if isinstance(e, json.JSONDecodeError)), None)
    if decode is not None:
        return shaping.malformed(clean(str(decode)))
    status, body = _http_status(chain)
    if status is not None:
        detail = error_detail(body) if body else ""
        detail = detail or _litellm_message(exc)
        return _status_error(chain, status, status_reason(status, detail), f"{body} {detail}")
    if isinstance(exc, APIConnectionError):
        return ProviderConnectionError(clean(f"connection error: {_litellm_message(exc)}"))
    if isinstance(exc, ContentPolicyViolationError):
        return ProviderRefusalError(clean(f"the provider refused: {_litellm_message(exc)}"))
    return ProviderError(clean(f"provider error ({type(exc).__name__}): {_litellm_message(exc)}"))


def _status_error(
    chain: list[BaseException], status: int, reason: str, text: str
) -> ProviderStatusError | ProviderRefusalError:
    """The error class for an HTTP error status (see ``reasons.status_error``)."""
    return status_error(
        status,
        reason,
        text,
        retry_after=_retry_after(chain),
        context_window=any(isinstance(e, ContextWindowExceededError) for e in chain),
        content_policy=any(isinstance(e, ContentPolicyViolationError) for e in chain),
    )


def _retry_after(chain: list[BaseException]) -> float | None:
    """``Retry-After`` of the first response in the chain that has headers."""
    for e in chain:
        response = getattr(e, "response", None)
        headers = response.headers if isinstance(response, httpx.Response) else None
        if not headers:
            extra = getattr(e, "litellm_response_headers", None)
            headers = httpx.Headers(extra) if extra else None
        if headers:
            return retry_after(headers)
    return None


def _connection_reason(transport: BaseException, model: ModelSpec) -> str:
    refused = any(isinstance(e, ConnectionRefusedError) for e in _chain(transport))
    return connection_reason(model.api_base, refused, transport)


def _http_status(chain: list[BaseException]) -> tuple[int | None, str]:
    """The HTTP status and body the provider answered with, if the failure was one."""
    for e in chain:
        if isinstance(e, httpx.HTTPStatusError):
            try:
                body = e.response.text
            except (httpx.HTTPError, UnicodeDecodeError):
                body = ""
            return e.response.status_code, body
    for e in chain:
        response = getattr(e, "response", None)
        provider_status = getattr(e, "provider_status_code", None)
        if isinstance(provider_status, int):
            return provider_status, ""
        # The OpenAI SDK's errors keep the real response; litellm's own are synthetic.
        if isinstance(response, httpx.Response) and type(e).__module__.startswith("openai"):
            try:
                return response.status_code, response.text
            except (httpx.HTTPError, UnicodeDecodeError):
                return response.status_code, ""
    status = getattr(chain[0], "status_code", None)
    if isinstance(chain[0], APIError | openai.APIStatusError) and isinstance(status, int):
        return status, ""
    return None, ""


_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+|\w+(?:Exception|Error))\s*[-:]\s*")
_LITELLM_SUFFIX = re.compile(
    r"\.?\s*(?:Handle with `litellm\.\w+`\.?|Received Model Group=.*|LiteLLM Retried:.*)$", re.S
)


def _litellm_message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc)
    for _ in range(4):
        text = _LITELLM_PREFIX.sub("", text.lstrip())
    return clean(_LITELLM_SUFFIX.sub("", text))
