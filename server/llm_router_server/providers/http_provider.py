"""``AiohttpProvider``: the native fast path for Ollama, Anthropic and OpenAI-compatible APIs.

The transport only: plain ``http://`` upstreams (the local model) over
``transport.py``'s own keep-alive HTTP/1.1 client, everything else (``https://``,
URL credentials) over one keep-alive ``aiohttp.ClientSession`` per upstream origin;
the fixed part of each model's request worked out once
(``protocols.endpoint_for``), the call's timeout, and the transports' exceptions and
HTTP error statuses translated into ``ProviderError``s. What goes in a body and
what an answer means belong to the model's wire protocol (``ollama.py``,
``anthropic.py``, ``openai.py``). No model-table lookups, logging objects or
thread hops per call. It speaks only what ``protocols.py`` lists;
``DispatchProvider`` (``dispatch.py``) sends everything else to litellm.

Semantics are the litellm path's, pinned by the same wire-level tests
(``tests/providers/test_both_paths.py`` runs against both) and shared where they
are decided (``shaping.py``, ``reasons.py``):

- ``request.timeout`` bounds the whole call (``ProviderTimeoutError``); a
  cancelled call closes its upstream connection.
- A call with a schema to a protocol that does not serve schemas
  (``serves_schema``; every protocol serves them today, Anthropic since its
  structured output moved here) is not served here: ``serves()`` says so.
- The headers of a call are the endpoint's plus any its body needs
  (``call_headers``: Anthropic's beta flag for ``output_format``).
- Both transports' exceptions become ``ProviderError``s in one place, ``_translate``,
  with the same reason texts as the litellm path (``reasons.py``).
- A response body is read to at most ``response_limit(limits.max_answer_chars)``
  bytes on either transport; a longer one is a ``ProviderResponseError``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import aiohttp

from llm_router_server.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderUnreachableError,
)
from llm_router_server.providers import reasons
from llm_router_server.providers.http11 import BodyTooLargeError, ConnectError, TransportError
from llm_router_server.providers.protocols import Endpoint, endpoint_for
from llm_router_server.providers.shaping import malformed
from llm_router_server.providers.transport import Transport
from llm_router_server.types import Completion, CompletionRequest, ModelSpec

USER_AGENT = "llm-router (native)"
CONNECTIONS_PER_UPSTREAM = 256
"""Most open connections to one upstream origin; more concurrent calls wait for one."""
DEFAULT_MAX_ANSWER_CHARS = 500_000


def response_limit(max_answer_chars: int) -> int:
    """Most bytes of one provider response: room for an answer of ``max_answer_chars``
    characters each JSON-escaped at worst (12 bytes: a surrogate pair), plus 1 MiB."""
    return 12 * max_answer_chars + (1 << 20)


class AiohttpProvider:
    """Calls Ollama ``/api/chat``, Anthropic Messages and OpenAI chat completions directly."""

    def __init__(
        self,
        *,
        default_max_tokens: int = 4096,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
        transport: bool = True,
    ) -> None:
        self.default_max_tokens = default_max_tokens
        self.max_body = response_limit(max_answer_chars)
        self._endpoints: dict[int, tuple[ModelSpec, Endpoint | None]] = {}
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._transport = (
            Transport(limit=CONNECTIONS_PER_UPSTREAM, max_body=self.max_body, user_agent=USER_AGENT)
            if transport
            else None
        )

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
        return request.schema is None or endpoint.wire.serves_schema

    async def start(self) -> None:
        return None

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        endpoint = self.endpoint(model)
        if endpoint is None or not self.serves(model, request):
            raise ProviderError(f"the native path does not serve this call to {model.model}")
        body = endpoint.wire.body(endpoint.body, request)
        sent = endpoint.wire.call_headers(endpoint.headers, body)
        data = json.dumps(body).encode()
        if request.headers:  # the trace context (traceparent) goes on to the provider
            sent = {**sent, **request.headers}
        target = None if self._transport is None else self._transport.target(endpoint.url)
        headers: Mapping[str, str]
        try:
            async with asyncio.timeout(request.timeout):
                if target is not None and self._transport is not None:  # plain http://
                    reply = await self._transport.post(target, sent, data)
                    raw, status, phrase, headers = (
                        reply.body,
                        reply.status,
                        reply.reason,
                        reply.headers,
                    )
                else:
                    session = self._sessions.get(endpoint.origin) or self._session(endpoint.origin)
                    async with session.post(endpoint.url, data=data, headers=sent) as response:
                        raw = await _read(response, self.max_body)
                        status = response.status
                        phrase = response.reason or ""
                        headers = response.headers
        except Exception as exc:
            raise _translate(exc, endpoint, request.timeout) from exc
        if status >= 400:
            text = raw.decode("utf-8", "replace")
            detail = (reasons.error_detail(text) if text else "") or phrase
            reason = reasons.status_reason(status, detail)
            after = reasons.retry_after(headers)
            raise reasons.status_error(status, reason, f"{text} {detail}", retry_after=after)
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise malformed(reasons.clean(str(exc))) from exc
        if not isinstance(answer, dict):
            raise malformed("not a JSON object")
        return endpoint.wire.completion(answer)

    async def aclose(self) -> None:
        """Close every session and connection."""
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
        if self._transport is not None:
            await self._transport.aclose()

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


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of an aiohttp response, at most ``limit`` bytes (else ``BodyTooLargeError``)."""
    if (response.content_length or 0) > limit:
        raise BodyTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)


# -- exception translation: the one place transport exceptions become ProviderErrors --------


def _translate(exc: Exception, endpoint: Endpoint, timeout: float) -> ProviderError:
    if isinstance(exc, TimeoutError):
        return reasons.timeout_error(timeout)
    if isinstance(exc, BodyTooLargeError):
        return ProviderResponseError(
            f"response from provider over {exc.limit} bytes (12 x limits.max_answer_chars + 1 MiB)"
        )
    if isinstance(exc, ConnectError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        reason = reasons.connection_reason(endpoint.api_base, refused, exc.os_error)
        return ProviderUnreachableError(reason)
    if isinstance(exc, TransportError):
        return ProviderConnectionError(reasons.connection_reason(endpoint.api_base, False, exc))
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        reason = reasons.connection_reason(endpoint.api_base, refused, exc.os_error)
        return ProviderUnreachableError(reason)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ProviderConnectionError(reasons.connection_reason(endpoint.api_base, False, exc))
    return ProviderError(reasons.clean(f"provider error ({type(exc).__name__}): {exc}"))
