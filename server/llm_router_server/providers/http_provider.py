"""``AiohttpProvider``: the native fast path for Ollama, Anthropic and OpenAI-compatible APIs.

One keep-alive ``aiohttp.ClientSession`` per upstream origin, the fixed part of
each model's request worked out once (``protocols.endpoint_for``), and a JSON
body per call: no model-table lookups, logging objects or thread hops per
call. It speaks only what ``protocols.py`` lists; ``DispatchProvider``
(``dispatch.py``) sends everything else to litellm.

Semantics are the litellm path's, pinned by the same wire-level tests
(``tests/test_litellm_provider.py`` runs against both):

- ``request.timeout`` bounds the whole call (``ProviderTimeoutError``); a
  cancelled call closes its upstream connection.
- Structured output: Ollama ``format`` = the schema; OpenAI ``response_format``
  ``json_schema`` with ``strict: false``. Anthropic calls with a schema are not
  served here (litellm's per-model structured-output rules for Claude are
  large and change between versions): ``serves()`` says so.
- Claude's ``stop_reason: refusal`` and OpenAI's ``content_filter`` raise
  ``ProviderRefusalError``; an empty answer ``ProviderResponseError``.
- aiohttp's exceptions become ``ProviderError``s in one place, ``_translate``,
  with the same reason texts as the litellm path (``reasons.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from llm_router_server.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderRefusalError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from llm_router_server.providers.protocols import (
    ANTHROPIC_STRUCTURED_BETA,
    Endpoint,
    Wire,
    endpoint_for,
)
from llm_router_server.providers.reasons import (
    clean,
    connection_reason,
    error_detail,
    retry_after,
    status_error,
    status_reason,
)
from llm_router_server.types import Completion, CompletionRequest, ModelSpec, Usage

USER_AGENT = "llm-router (native)"
CONNECTIONS_PER_UPSTREAM = 256
"""Most open connections to one upstream origin; more concurrent calls wait for one."""

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class AiohttpProvider:
    """Calls Ollama ``/api/chat``, Anthropic Messages and OpenAI chat completions directly."""

    def __init__(self, *, default_max_tokens: int = 4096) -> None:
        self.default_max_tokens = default_max_tokens
        self._endpoints: dict[int, tuple[ModelSpec, Endpoint | None]] = {}
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def endpoint(self, spec: ModelSpec) -> Endpoint | None:
        """The model's endpoint, worked out on its first use (None: not native)."""
        cached = self._endpoints.get(id(spec))
        if cached is not None and cached[0] is spec:
            return cached[1]
        endpoint = endpoint_for(spec, self.default_max_tokens)
        self._endpoints[id(spec)] = (spec, endpoint)  # holds spec: its id stays unique
        return endpoint

    def serves(self, spec: ModelSpec, request: CompletionRequest) -> bool:
        """Whether this provider serves this call (else litellm must)."""
        endpoint = self.endpoint(spec)
        if endpoint is None:
            return False
        return request.schema is None or endpoint.wire is not Wire.ANTHROPIC

    async def start(self) -> None:
        return None

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        endpoint = self.endpoint(model)
        if endpoint is None or not self.serves(model, request):
            raise ProviderError(f"the native path does not serve this call to {model.model}")
        headers = endpoint.headers
        if request.schema is not None and endpoint.wire is Wire.ANTHROPIC:
            headers = {**headers, "anthropic-beta": ANTHROPIC_STRUCTURED_BETA}
        data = json.dumps(_body(endpoint, request)).encode()
        session = self._sessions.get(endpoint.origin) or self._session(endpoint.origin)
        try:
            async with asyncio.timeout(request.timeout):
                async with session.post(endpoint.url, data=data, headers=headers) as response:
                    raw = await response.read()
                    status = response.status
                    phrase = response.reason or ""
                    headers = response.headers
        except Exception as exc:
            raise _translate(exc, endpoint, request.timeout) from exc
        if status >= 400:
            text = raw.decode("utf-8", "replace")
            detail = (error_detail(text) if text else "") or phrase
            reason = status_reason(status, detail)
            raise status_error(status, reason, f"{text} {detail}", retry_after=retry_after(headers))
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            reason = f"malformed response from provider: {clean(str(exc))}"
            raise ProviderResponseError(reason) from exc
        return _completion(endpoint.wire, answer)

    async def aclose(self) -> None:
        """Close every session (and its keep-alive connections)."""
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    def _session(self, origin: str) -> aiohttp.ClientSession:
        session = self._sessions.get(origin)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS_PER_UPSTREAM),
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": USER_AGENT},
            )
            self._sessions[origin] = session
        return session


def _body(endpoint: Endpoint, request: CompletionRequest) -> dict[str, Any]:
    body = dict(endpoint.body)
    schema = request.schema
    if endpoint.wire is Wire.ANTHROPIC:
        system = [m.content for m in request.messages if m.role == "system"]
        body["messages"] = [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ]
        if system:
            body["system"] = "\n\n".join(system)
        return body
    body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
    if schema is not None and endpoint.wire is Wire.OLLAMA_CHAT:
        body["format"] = dict(schema)
    elif schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            # strict=False, as on the litellm path: OpenAI rejects schemas outside its
            # strict subset, and the chain validates every answer anyway.
            "json_schema": {"name": "response", "schema": dict(schema), "strict": False},
        }
    return body


# -- answers ------------------------------------------------------------------------------


def _completion(wire: Wire, answer: Any) -> Completion:
    if not isinstance(answer, dict):
        raise ProviderResponseError("malformed response from provider: not a JSON object")
    if wire is Wire.OLLAMA_CHAT:
        message = answer.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        finish = answer.get("done_reason")
        usage = _usage(answer.get("prompt_eval_count"), answer.get("eval_count"))
    elif wire is Wire.ANTHROPIC:
        blocks = answer.get("content")
        if not isinstance(blocks, list):
            raise ProviderResponseError("malformed response from provider: no content")
        text = "".join(
            b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
        stop = answer.get("stop_reason")
        finish = "content_filter" if stop == "refusal" else _FINISH.get(str(stop), stop)
        counts = answer.get("usage")
        usage = _anthropic_usage(counts) if isinstance(counts, dict) else None
    else:
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ProviderResponseError("malformed response from provider: no choices")
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
        finish = choices[0].get("finish_reason")
        counts = answer.get("usage")
        usage = None
        if isinstance(counts, dict):
            usage = _usage(
                counts.get("prompt_tokens"),
                counts.get("completion_tokens"),
                counts.get("total_tokens"),
            )
    if finish == "content_filter":
        raise ProviderRefusalError("the provider refused to answer (content_filter)")
    if not isinstance(text, str) or not text:
        raise ProviderResponseError(f"empty answer from provider (finish_reason {finish})")
    return Completion(text=text, usage=usage)


def _usage(prompt: object, completion: object, total: object = None) -> Usage | None:
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion, total if isinstance(total, int) else prompt + completion)


def _anthropic_usage(counts: Mapping[str, Any]) -> Usage | None:
    """Prompt tokens include cache writes and reads, as litellm counts them."""
    prompt = counts.get("input_tokens")
    if not isinstance(prompt, int):
        return None
    for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        extra = counts.get(key)
        prompt += extra if isinstance(extra, int) else 0
    return _usage(prompt, counts.get("output_tokens"))


# -- exception translation: the one place aiohttp's exceptions become ProviderErrors --------


def _translate(exc: Exception, endpoint: Endpoint, timeout: float) -> ProviderError:
    if isinstance(exc, TimeoutError):
        return ProviderTimeoutError(f"no answer from provider within {timeout:.3g}s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        return ProviderConnectionError(connection_reason(endpoint.api_base, refused, exc.os_error))
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ProviderConnectionError(connection_reason(endpoint.api_base, False, exc))
    return ProviderError(clean(f"provider error ({type(exc).__name__}): {exc}"))
