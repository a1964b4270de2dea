"""Claude's structured output on both provider paths, against the wire-level fake.

The fake refuses what the real Messages API refuses (``output_format`` without
its beta header or with a schema the decoder cannot take, a forced tool whose
schema is not an object), so a request that gets an answer is one the API takes.
Where both paths send the same request, the tests say so by comparing them;
where the native path deliberately differs (``anthropic.py``'s docstring), the
tests pin the native behaviour.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from llm_router_server.errors import (
    ProviderRefusalError,
    ProviderResponseError,
    ProviderStatusError,
)
from llm_router_server.providers import anthropic_schema
from llm_router_server.providers.anthropic import STRUCTURED_BETA, Anthropic
from llm_router_server.providers.base import Provider
from llm_router_server.providers.dispatch import DispatchProvider
from llm_router_server.providers.http_provider import USER_AGENT
from llm_router_server.providers.litellm_provider import LiteLLMProvider
from llm_router_server.types import CompletionRequest, Message, ModelSpec, Usage
from tests.support.upstream import Answer, FakeUpstream, HttpError, SafetyRefusal

Upstream = Callable[[], FakeUpstream]

HAIKU = "claude-haiku-4-5-20251001"  # output_format
SONNET = "claude-sonnet-4-6"  # output_format
OPUS_41 = "anthropic/claude-opus-4-1"  # no output_format: forced tool
CLOSED = {
    "type": "object",
    "properties": {"action": {"type": "string"}},
    "required": ["action"],
    "additionalProperties": False,
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "closed": CLOSED,
    "no additionalProperties": {k: v for k, v in CLOSED.items() if k != "additionalProperties"},
    "no properties": {"type": "object", "required": ["action"]},
    "additionalProperties true": {**CLOSED, "additionalProperties": True},
    "unsupported keywords": {
        "type": "object",
        "properties": {
            "action": {"type": "string", "minLength": 2, "description": "what to do"},
            "n": {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 3},
                "minItems": 1,
                "maxItems": 4,
                "uniqueItems": True,
            },
            "mixed": {"type": "string", "enum": ["a", 1]},
            "other": {"not": {"type": "null"}},
        },
        "required": ["action"],
        "additionalProperties": False,
    },
}
OUTPUT_FORMAT_FOR = {"closed", "no additionalProperties", "unsupported keywords"}
"""Schemas output_format takes on an output_format model; the others (open objects) go as a tool."""


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-TESTKEY0123456789")


def make(path: str) -> Provider:
    return LiteLLMProvider() if path == "litellm" else DispatchProvider()


@pytest.fixture(params=["litellm", "native"])
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[Provider]:
    p = make(request.param)
    yield p
    await p.aclose()


def claude(up: FakeUpstream, model: str = HAIKU) -> ModelSpec:
    return ModelSpec(model, timeout=5.0, api_base=up.url)


def ask(schema: dict[str, Any]) -> CompletionRequest:
    messages = (Message("system", "Be brief."), Message("user", "What now?"))
    return CompletionRequest(messages=messages, schema=schema, timeout=5.0)


def structured_part(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("output_format", "tools", "tool_choice") if k in body}


# -- both paths send the same request and read the same answer ------------------------------


@pytest.mark.parametrize("model", [HAIKU, SONNET, OPUS_41])
@pytest.mark.parametrize("name", list(SCHEMAS))
async def test_both_paths_send_the_same_structured_request_and_read_the_same_answer(
    upstream: Upstream, model: str, name: str
) -> None:
    up = upstream()
    texts, headers, bodies = [], [], []
    for path in ("litellm", "native"):
        p = make(path)
        up.script(Answer('{"action": "wait"}', prompt_tokens=5, completion_tokens=3))
        completion = await p.complete(claude(up, model), ask(SCHEMAS[name]))
        await p.aclose()
        assert completion.usage == Usage(5, 3, 8)
        texts.append(completion.text)
        call = up.chat_requests()[-1]
        headers.append(call.headers.get("anthropic-beta"))
        bodies.append(structured_part(call.body))
    assert up.chat_requests()[-1].headers["User-Agent"] == USER_AGENT
    assert bodies[0] == bodies[1] and headers[0] == headers[1]
    assert texts[0] == texts[1] and json.loads(texts[0]) == {"action": "wait"}
    if model != OPUS_41 and name in OUTPUT_FORMAT_FOR:
        assert set(bodies[1]) == {"output_format"} and headers[1] == STRUCTURED_BETA
    else:
        assert bodies[1]["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
        assert headers[1] is None


async def test_output_format_states_what_the_decoder_cannot_enforce_in_descriptions(
    upstream: Upstream,
) -> None:
    up = upstream()
    p = DispatchProvider()
    await p.complete(claude(up), ask(SCHEMAS["unsupported keywords"]))
    await p.aclose()
    assert not p.litellm_ready
    sent = up.chat_requests()[0].body["output_format"]["schema"]
    action, n, tags = (sent["properties"][k] for k in ("action", "n", "tags"))
    assert action == {"type": "string", "description": "what to do Note: minimum length: 2."}
    assert n == {
        "anyOf": [{"type": "integer", "description": "Note: minimum value: 1."}, {"type": "string"}]
    }
    assert tags["minItems"] == 1 and "maxItems" not in tags and "uniqueItems" not in tags
    assert (
        tags["description"] == "Note: maximum number of items: 4, all array items must be unique."
    )
    assert sent["properties"]["mixed"] == {"enum": ["a", 1]}  # a type the enum breaks is dropped
    assert sent["properties"]["other"] == {"description": 'Note: must not match: {"type": "null"}.'}
    assert sent["additionalProperties"] is False


@pytest.mark.parametrize("model", [HAIKU, OPUS_41])
async def test_a_refusal_with_a_schema_is_a_refusal_on_both_paths(
    provider: Provider, upstream: Upstream, model: str
) -> None:
    up = upstream()
    up.script(SafetyRefusal())
    with pytest.raises(ProviderRefusalError):
        await provider.complete(claude(up, model), ask(CLOSED))


@pytest.mark.parametrize("model", [HAIKU, OPUS_41])
async def test_an_empty_answer_with_a_schema_is_a_response_error_on_both_paths(
    provider: Provider, upstream: Upstream, model: str
) -> None:
    up = upstream()
    up.script(Answer(""))
    with pytest.raises(ProviderResponseError, match="empty answer"):
        await provider.complete(claude(up, model), ask(CLOSED))


@pytest.mark.parametrize(
    ("model", "text", "expected"),
    [
        (HAIKU, '{"action": "wa', '{"action": "wa'),  # cut-off text: the chain finds no JSON
        (OPUS_41, '{"action":"wait"}', '{"action": "wait"}'),  # the tool input as it came
    ],
)
async def test_an_answer_cut_off_at_max_tokens_is_passed_on_for_the_chain_to_judge(
    provider: Provider, upstream: Upstream, model: str, text: str, expected: str
) -> None:
    up = upstream()
    up.script(Answer(text, stop_reason="max_tokens"))
    completion = await provider.complete(claude(up, model), ask(CLOSED))
    assert completion.text == expected


async def test_a_schema_the_api_rejects_is_a_status_error_not_retried(
    provider: Provider, upstream: Upstream
) -> None:
    """Over the decoder's complexity limits: HTTP 400, and the chain moves on to its next model."""
    up = upstream()
    message = "output_format.schema: Schemas contains too many optional parameters (25 > 24)"
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    up.script(HttpError(400, body))
    with pytest.raises(ProviderStatusError) as info:
        await provider.complete(claude(up), ask(CLOSED))
    assert type(info.value) is ProviderStatusError and info.value.status_code == 400
    assert str(info.value) == f"HTTP 400 from provider: {message} (invalid_request_error)"
    assert len(up.chat_requests()) == 1


# -- where the native path deliberately sends something else ---------------------------------


async def test_a_schema_whose_root_is_not_an_object_goes_in_a_one_property_tool(
    upstream: Upstream,
) -> None:
    """A tool's input_schema must be an object (litellm sends the array and gets HTTP 400)."""
    up = upstream()
    up.script(Answer('["a", "b"]'))
    p = DispatchProvider()
    completion = await p.complete(claude(up, OPUS_41), ask({"type": "array", "items": {}}))
    await p.aclose()
    assert json.loads(completion.text) == ["a", "b"]
    [tool] = up.chat_requests()[0].body["tools"]
    assert tool["input_schema"] == {
        "type": "object",
        "properties": {"value": {"type": "array", "items": {}}},
        "required": ["value"],
    }


RECURSIVE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"$ref": "#"}},
    },
    "required": ["name"],
    "additionalProperties": False,
}


async def test_a_recursive_schema_goes_as_a_forced_tool_even_where_output_format_exists(
    upstream: Upstream,
) -> None:
    up = upstream()
    up.script(Answer('{"name": "a", "children": [{"name": "b"}]}'))
    p = DispatchProvider()
    completion = await p.complete(claude(up), ask(RECURSIVE))
    await p.aclose()
    assert json.loads(completion.text) == {"name": "a", "children": [{"name": "b"}]}
    call = up.chat_requests()[0]
    assert "output_format" not in call.body and "anthropic-beta" not in call.headers
    assert call.body["tools"][0]["input_schema"]["properties"]["children"]["items"] == {"$ref": "#"}


@pytest.mark.parametrize(
    ("schema", "recursive"),
    [
        (RECURSIVE, True),
        (CLOSED, False),
        ({"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a"}}}, False),
        (
            {
                "$defs": {"a": {"properties": {"b": {"$ref": "#/$defs/b"}}},
                          "b": {"items": {"$ref": "#/$defs/a"}}},
                "properties": {"x": {"$ref": "#/$defs/a"}},
            },
            True,
        ),
        ({"definitions": {"a": {"$ref": "#/definitions/a"}}}, True),  # even unreachable
        ({"properties": {"x": {"$ref": "#/properties/y"}, "y": {}}}, True),  # other pointers
        ({"$defs": {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(3000)}
          | {"d3000": {"type": "string"}}, "$ref": "#/$defs/d0"}, False),  # a long chain
    ],
)  # fmt: skip
def test_recursion_is_found_through_definitions(schema: dict[str, Any], recursive: bool) -> None:
    assert anthropic_schema._recursive(schema) is recursive


# -- the fake refuses what the real API refuses ----------------------------------------------


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("extra", "headers", "refusal"),
    [
        ({"output_format": {"type": "json_schema", "schema": CLOSED}}, {}, "Extra inputs"),
        (
            {"output_format": {"type": "json_schema", "schema": SCHEMAS["no properties"]}},
            {"anthropic-beta": STRUCTURED_BETA},
            "'additionalProperties' must be explicitly set to false",
        ),
        (
            {"output_format": {"type": "json_schema", "schema": SCHEMAS["unsupported keywords"]}},
            {"anthropic-beta": STRUCTURED_BETA},
            "is not supported",
        ),
        (
            {"tools": [{"name": "t", "input_schema": {"type": "array"}}],
             "tool_choice": {"type": "tool", "name": "t"}},
            {},
            "Input should be 'object'",
        ),
        ({"tool_choice": {"type": "tool", "name": "t"}}, {}, "not found in tools"),
    ],
)  # fmt: skip
def test_the_fake_refuses_structured_requests_the_real_api_refuses(
    upstream: Upstream, extra: dict[str, Any], headers: dict[str, str], refusal: str
) -> None:
    up = upstream()
    body = {"model": HAIKU, "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}
    status, answer = post(up.url + "/v1/messages", {**body, **extra}, headers)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    assert refusal in answer["error"]["message"]


def test_the_request_parts_kept_per_schema_are_bounded_in_number_and_bytes() -> None:
    wire = Anthropic()
    schemas = [{**CLOSED, "title": f"s{i}"} for i in range(300)]
    parts = [wire.structured(HAIKU, schema) for schema in schemas]
    assert wire.structured(HAIKU, schemas[-1]) is parts[-1]  # worked out once
    assert len(wire._plans) == 256 and wire._plan_bytes <= 4 << 20
    huge = {**CLOSED, "description": "x" * (1 << 20)}
    assert "output_format" in wire.structured(HAIKU, huge)
    assert all(kept[0] is not huge for kept in wire._plans.values())
