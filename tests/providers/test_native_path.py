"""The native path (``DispatchProvider``): which calls it serves itself, which it hands to
litellm, and that it sends what litellm sends."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from llm_router_server.providers.dispatch import DispatchProvider
from llm_router_server.providers.http_provider import USER_AGENT
from llm_router_server.types import CompletionRequest, Message, ModelSpec
from tests.support.fixtures import Upstream
from tests.support.providers import PATHS, SCHEMA, make_provider, question, spec
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.usefixtures("api_keys")


def agents(up: FakeUpstream) -> list[str]:
    return [r.headers.get("User-Agent", "") for r in up.chat_requests()]


@pytest.mark.parametrize("kind", ["ollama_chat", "anthropic", "openai"])
async def test_the_native_path_serves_the_default_chains_protocols(
    upstream: Upstream, kind: str
) -> None:
    up = upstream()
    provider = DispatchProvider()
    await provider.complete(spec(kind, up.url, temperature=0.5), question())
    await provider.complete(spec(kind, up.url), question(SCHEMA))
    await provider.aclose()
    assert set(agents(up)) == {USER_AGENT}
    assert not provider.litellm_ready  # never imported for these calls


@pytest.mark.parametrize(
    ("model", "schema", "params"),
    [
        (spec("ollama", ""), None, {}),  # ollama/: litellm's prompt templates
        (spec("anthropic", ""), SCHEMA, {"stop": ["x"]}),  # a param its table lacks
        (spec("openai", ""), None, {"logit_bias": {"1": 2}}),  # a param the table lacks
        (ModelSpec("ollama_chat/qwen2.5:7b", 5.0, provider="litellm"), None, {}),
    ],
)
async def test_what_the_native_path_does_not_serve_goes_to_litellm(
    upstream: Upstream, model: ModelSpec, schema: dict[str, Any] | None, params: dict[str, Any]
) -> None:
    up = upstream()
    base = up.url + "/v1" if model.model.startswith("openai/") else up.url
    provider = DispatchProvider()
    model = replace(model, api_base=base, params=params)
    completion = await provider.complete(model, question(schema))
    await provider.aclose()
    assert completion.text == "ok"
    assert USER_AGENT not in agents(up)


async def test_a_model_lost_to_litellm_by_a_param_is_named_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lost = spec("openai", "http://127.0.0.1:9", logit_bias={"1": 2})
    kept = spec("ollama_chat", "http://127.0.0.1:9", keep_alive="30m")
    provider = DispatchProvider([lost, kept])
    with caplog.at_level("INFO", logger="llm_router_server.providers.dispatch"):
        await provider.start()
    await provider.aclose()
    said = [r.getMessage() for r in caplog.records if "goes through litellm" in r.getMessage()]
    assert said == [
        "openai/gpt-4o-mini goes through litellm: params logit_bias are not supported by the "
        "native openai path"
    ]


def _semantic(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A request body without the differences that mean nothing to the provider."""
    body = json.loads(json.dumps(body))
    if path == "/api/chat":
        for message in body["messages"]:
            message.pop("images", None)
    if path == "/v1/messages":
        for message in body["messages"]:
            if isinstance(message["content"], list):
                message["content"] = "".join(b["text"] for b in message["content"])
        if isinstance(body.get("system"), list):
            body["system"] = "\n\n".join(b["text"] for b in body["system"])
    return body


EQUAL_PARAMS = {
    "ollama_chat": {
        **{"temperature": 0.2, "top_p": 0.9, "stop": ["x"], "seed": 3, "max_tokens": 9},
        "keep_alive": "30m",
    },
    "anthropic": {"temperature": 0.2, "top_p": 0.9, "top_k": 5, "max_tokens": 9},
    "openai": {"temperature": 0.2, "top_p": 0.9, "stop": ["x"], "seed": 3, "presence_penalty": 1},
}


@pytest.mark.parametrize("kind", ["ollama_chat", "anthropic", "openai"])
@pytest.mark.parametrize("with_schema", [False, True])
async def test_the_native_path_sends_what_litellm_sends(
    upstream: Upstream, kind: str, with_schema: bool
) -> None:
    """Same path, body (up to content-block framing) and auth headers as litellm's request."""
    up = upstream()
    request = CompletionRequest(
        messages=(
            Message("system", "Be brief."),
            Message("user", "hi"),
            Message("assistant", "hello"),
            Message("user", "What now?"),
        ),
        schema=SCHEMA if with_schema else None,
        timeout=5.0,
    )
    for path in PATHS:
        p = make_provider(path)
        await p.complete(spec(kind, up.url, **EQUAL_PARAMS[kind]), request)
        await p.aclose()
    litellm_call, native_call = up.chat_requests()
    assert native_call.path == litellm_call.path
    assert _semantic(native_call.path, native_call.body) == _semantic(
        litellm_call.path, litellm_call.body
    )
    for header in ("x-api-key", "Authorization", "anthropic-version", "anthropic-beta"):
        assert native_call.headers.get(header) == litellm_call.headers.get(header)
