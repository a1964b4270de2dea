"""Both provider paths against wire-level fakes: the real code runs, only the servers are fake.

Each test pins one measured litellm pitfall (see the provider module's docstring)
or one fault's translation into the ProviderError tree. The ``provider`` fixture
runs every test twice: on ``LiteLLMProvider`` and on the server's
``DispatchProvider`` (the native aiohttp path, which hands ``ollama/`` models to
litellm), so both paths meet the same contract. Claude's structured output on
both paths: ``tests/providers/test_anthropic_structured.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from llm_router_server.errors import (
    ProviderAuthenticationError,
    ProviderConnectionError,
    ProviderEmptyAnswerError,
    ProviderError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderRefusalError,
    ProviderResponseError,
    ProviderStatusError,
    ProviderTimeoutError,
)
from llm_router_server.providers.base import Provider
from llm_router_server.providers.litellm_provider import LiteLLMProvider
from llm_router_server.types import Usage
from tests.support.fixtures import ANTHROPIC_KEY, OPENAI_KEY, Upstream
from tests.support.net import free_port
from tests.support.providers import KINDS, PATHS, SCHEMA, fail, make_provider, question, spec
from tests.support.upstream import (
    Answer,
    Behaviour,
    Drop,
    Hang,
    HttpError,
    Malformed,
    SafetyRefusal,
    Truncated,
)
from tests.support.wire import REFUSAL_TEXT

pytestmark = pytest.mark.usefixtures("api_keys")
CHAT_PATH = {
    "ollama": "/api/generate",
    "ollama_chat": "/api/chat",
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
}


@pytest.fixture(params=PATHS)
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[Provider]:
    p = make_provider(request.param)
    yield p
    await p.aclose()


def assert_clean(reason: str) -> None:
    assert reason and "\n" not in reason and len(reason) <= 300
    for leak in ("Traceback", 'File "', "site-packages", "/usr/", ".py", ANTHROPIC_KEY, OPENAI_KEY):
        assert leak not in reason


# -- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_each_protocol_answers_with_text_and_usage(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    """Pitfall 5: ``ollama/`` uses /api/generate (litellm's prompt), ``ollama_chat/`` /api/chat."""
    up = upstream()
    up.script(Answer("hello there", prompt_tokens=5, completion_tokens=3))
    completion = await provider.complete(spec(kind, up.url), question())
    assert completion.text == "hello there"
    assert completion.usage == Usage(5, 3, 8)
    [call] = up.chat_requests()
    assert call.path == CHAT_PATH[kind]
    assert "What now?" in json.dumps(call.body)
    if kind == "ollama":
        assert "prompt" in call.body and "messages" not in call.body


# -- pitfall 2: /api/show ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ollama", "ollama_chat"])
async def test_ollama_calls_never_ask_api_show_nor_block_the_loop(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    up = upstream()
    up.on_path("/api/show", Hang())
    up.on_path("/api/tags", Hang())
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            worst = max(worst, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.monotonic()
    for _ in range(2):
        completion = await provider.complete(spec(kind, up.url), question(SCHEMA, timeout=3.0))
        assert completion.text == "ok"
    tick.cancel()
    assert time.monotonic() - started < 2.0
    assert worst < 0.5
    assert [r.path for r in up.requests] == [CHAT_PATH[kind]] * 2


# -- pitfall 3: retries -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failing_model_is_called_exactly_once(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    up = upstream()
    error = await fail(provider, up, kind, HttpError(500))
    assert isinstance(error, ProviderStatusError) and error.status_code == 500
    await asyncio.sleep(0.1)
    assert len(up.chat_requests()) == 1


# -- pitfall 4: max_tokens --------------------------------------------------------------------


async def test_anthropic_gets_the_default_max_tokens_not_the_model_maximum(
    provider: Provider, upstream: Upstream
) -> None:
    up = upstream()
    await provider.complete(spec("anthropic", up.url), question())
    await provider.complete(spec("anthropic", up.url, max_tokens=123), question())
    small = make_provider("litellm" if isinstance(provider, LiteLLMProvider) else "native", 77)
    await small.complete(spec("anthropic", up.url), question())
    await small.aclose()
    assert [r.body["max_tokens"] for r in up.chat_requests()] == [4096, 123, 77]


# -- pitfall 6: refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_safety_refusal_raises_a_refusal_error(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    error = await fail(provider, upstream(), kind, SafetyRefusal())
    assert type(error) is ProviderRefusalError
    assert_clean(str(error))


async def test_ollama_has_no_refusal_signal_so_its_refusal_is_just_text(
    provider: Provider, upstream: Upstream
) -> None:
    """The chain's refusal patterns catch it; the provider passes it on."""
    up = upstream()
    up.script(SafetyRefusal())
    completion = await provider.complete(spec("ollama_chat", up.url), question())
    assert completion.text == REFUSAL_TEXT


@pytest.mark.parametrize("kind", KINDS)
async def test_an_empty_answer_is_a_response_error(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    error = await fail(provider, upstream(), kind, Answer(""))
    # Its own class (a background probe counts it as the model answering), a response error.
    assert type(error) is ProviderEmptyAnswerError
    assert isinstance(error, ProviderResponseError)
    assert "empty answer" in str(error)


# -- pitfall 7: clean reasons -----------------------------------------------------------------

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/usr/lib/python3/dist-packages/ollama/runner.py", line 88, in run\n'
    "    raise RuntimeError('CUDA out of memory')\n"
    "RuntimeError: CUDA out of memory"
)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_traceback_in_an_error_body_becomes_one_clean_line(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    error = await fail(provider, upstream(), kind, HttpError(500, {"error": TRACEBACK}))
    assert isinstance(error, ProviderStatusError)
    assert str(error) == "HTTP 500 from provider: RuntimeError: CUDA out of memory"


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_secrets_echoed_by_the_provider_are_scrubbed(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    echo = f"bad key {OPENAI_KEY}; x-api-key: {ANTHROPIC_KEY}; Authorization: Bearer abc.def"
    body = {"error": {"message": echo, "type": "authentication_error"}}
    error = await fail(provider, upstream(), kind, HttpError(401, body))
    assert_clean(str(error))
    assert "abc.def" not in str(error)
    assert str(error).startswith("HTTP 401 from provider: bad key sk-***")


# -- pitfall 8: structured output -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_schema_is_sent_as_native_structured_output(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    up = upstream()
    up.script(Answer('{"action": "wait"}'), Answer("free text"))
    completion = await provider.complete(spec(kind, up.url), question(SCHEMA))
    assert json.loads(completion.text) == {"action": "wait"}
    await provider.complete(spec(kind, up.url), question(None))
    with_schema, without = (r.body for r in up.chat_requests())
    if kind.startswith("ollama"):
        assert with_schema["format"] == SCHEMA
        assert "format" not in without
    elif kind == "anthropic":
        assert with_schema["output_format"] == {"type": "json_schema", "schema": SCHEMA}
        assert "output_format" not in without
        schema_call, plain_call = up.chat_requests()
        assert schema_call.headers["anthropic-beta"] == "structured-outputs-2025-11-13"
        assert "anthropic-beta" not in plain_call.headers
    else:
        assert with_schema["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": SCHEMA, "strict": False},
        }
        assert "response_format" not in without


# -- pitfall 9: timeouts and cancellation -----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_hung_provider_times_out_on_time(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    up = upstream()
    up.script(Hang())
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as info:
        await provider.complete(spec(kind, up.url), question(timeout=0.3))
    assert 0.25 <= time.monotonic() - started < 1.0
    assert str(info.value) == "no answer from provider within 0.3s"
    assert await up.wait_for_disconnects(1, 2.0)
    assert len(up.chat_requests()) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_cancelling_the_call_closes_the_upstream_request(
    provider: Provider, upstream: Upstream, kind: str
) -> None:
    up = upstream()
    up.script(Hang())
    call = asyncio.create_task(provider.complete(spec(kind, up.url), question(timeout=10.0)))
    for _ in range(500):
        if up.chat_requests():
            break
        await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await up.wait_for_disconnects(1, 2.0)


# -- pitfall 10: faults -----------------------------------------------------------------------


STATUS_CLASSES: dict[int, type[ProviderStatusError]] = {
    429: ProviderRateLimitError,
    500: ProviderOverloadedError,
    503: ProviderOverloadedError,
    400: ProviderStatusError,
    401: ProviderAuthenticationError,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [429, 500, 503, 400, 401])
async def test_an_http_error_status_is_a_status_error_naming_it(
    provider: Provider, upstream: Upstream, kind: str, status: int
) -> None:
    error = await fail(provider, upstream(), kind, HttpError(status))
    # Each status has its class in the tree (issue 5), all of them ProviderStatusErrors.
    assert isinstance(error, ProviderStatusError)
    assert type(error) is STATUS_CLASSES[status]
    assert error.status_code == status
    assert str(error).startswith(f"HTTP {status} from provider: ")
    assert len(str(error)) > len(f"HTTP {status} from provider: ")
    assert_clean(str(error))


async def test_anthropic_overload_reads_as_such(provider: Provider, upstream: Upstream) -> None:
    error = await fail(provider, upstream(), "anthropic", HttpError(529))
    assert str(error) == "HTTP 529 from provider: Overloaded (overloaded_error)"


FAULTS: list[tuple[Behaviour, type[ProviderError], str]] = [
    (Drop(), ProviderConnectionError, "connection error"),
    (Truncated(), ProviderConnectionError, "connection error"),
    (Malformed(), ProviderResponseError, "malformed response from provider"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("fault", "kind_of_error", "prefix"), FAULTS)
async def test_a_broken_answer_is_a_connection_or_response_error(
    provider: Provider,
    upstream: Upstream,
    kind: str,
    fault: Behaviour,
    kind_of_error: type[ProviderError],
    prefix: str,
) -> None:
    error = await fail(provider, upstream(), kind, fault)
    assert type(error) is kind_of_error
    assert str(error).startswith(prefix)
    assert_clean(str(error))


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_connection_is_a_connection_error(provider: Provider, kind: str) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderConnectionError) as info:
        await provider.complete(spec(kind, base), question(timeout=2.0))
    assert str(info.value) == f"connection refused ({base})"
