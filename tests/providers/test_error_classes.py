"""Provider errors are classified at the provider seam (real litellm, fake providers at the
wire): rate limits with their Retry-After, overload, authentication, context window, content
policy. The breaker and the chain act on these classes."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator

import pytest

from llm_router_server.errors import (
    ProviderAuthenticationError,
    ProviderContextWindowError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderRefusalError,
    ProviderTimeoutError,
)
from llm_router_server.providers.litellm_provider import LiteLLMProvider
from tests.support.fixtures import Upstream
from tests.support.providers import fail
from tests.support.upstream import HttpError
from tests.support.wire import ANTHROPIC_TOO_LONG, OPENAI_POLICY, OPENAI_TOO_LONG

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("api_keys")]
KINDS = ("ollama_chat", "anthropic", "openai")


@pytest.fixture
async def provider() -> AsyncIterator[LiteLLMProvider]:
    p = LiteLLMProvider()
    yield p
    await p.aclose()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        (None, None),
        ({"Retry-After": "soon"}, None),
    ],
    ids=["seconds", "fraction", "ms", "absent", "garbage"],
)
async def test_429_is_a_rate_limit_carrying_retry_after(
    provider: LiteLLMProvider,
    upstream: Upstream,
    kind: str,
    headers: dict[str, str] | None,
    expected: float | None,
) -> None:
    error = await fail(provider, upstream(), kind, HttpError(429, headers=headers))
    assert isinstance(error, ProviderRateLimitError)
    assert error.retry_after == expected


async def test_retry_after_as_an_http_date(provider: LiteLLMProvider, upstream: Upstream) -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    error = await fail(
        provider, upstream(), "anthropic", HttpError(429, headers={"Retry-After": when})
    )
    assert isinstance(error, ProviderRateLimitError)
    assert error.retry_after is not None and 17 <= error.retry_after <= 21


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_overload(
    provider: LiteLLMProvider, upstream: Upstream, kind: str, status: int
) -> None:
    """litellm reads some 504s (gateway timeout) as its Timeout: a timeout then, which the
    breaker counts just the same."""
    error = await fail(provider, upstream(), kind, HttpError(status))
    expected = (
        (ProviderOverloadedError, ProviderTimeoutError)
        if status == 504
        else ProviderOverloadedError
    )
    assert isinstance(error, expected)


async def test_anthropic_529_is_overload(provider: LiteLLMProvider, upstream: Upstream) -> None:
    error = await fail(provider, upstream(), "anthropic", HttpError(529))
    assert isinstance(error, ProviderOverloadedError)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_authentication_errors_without_the_key(
    provider: LiteLLMProvider, upstream: Upstream, kind: str, status: int
) -> None:
    error = await fail(provider, upstream(), kind, HttpError(status))
    assert isinstance(error, ProviderAuthenticationError)
    assert "0123456789" not in str(error)


@pytest.mark.parametrize(
    ("kind", "body"),
    [("anthropic", ANTHROPIC_TOO_LONG), ("openai", OPENAI_TOO_LONG)],
)
async def test_context_length_400_is_a_context_window_error(
    provider: LiteLLMProvider, upstream: Upstream, kind: str, body: object
) -> None:
    error = await fail(provider, upstream(), kind, HttpError(400, body=body))
    assert isinstance(error, ProviderContextWindowError)
    assert error.status_code == 400


async def test_content_policy_400_is_a_safety_refusal(
    provider: LiteLLMProvider, upstream: Upstream
) -> None:
    error = await fail(provider, upstream(), "openai", HttpError(400, body=OPENAI_POLICY))
    assert isinstance(error, ProviderRefusalError)
    assert "content policy" in str(error)


async def test_a_plain_400_stays_a_plain_status_error(
    provider: LiteLLMProvider, upstream: Upstream
) -> None:
    error = await fail(provider, upstream(), "anthropic", HttpError(400))
    assert type(error).__name__ == "ProviderStatusError"
