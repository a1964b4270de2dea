"""Issue 10, item 4: a bad schema is INVALID_ARGUMENT (never INTERNAL) before any model is
called; every ``$ref`` and ``$dynamicRef`` is checked, however many; boolean schemas work."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from llm_router.v1 import router_pb2
from llm_router_server.routing.validation.offload import ValidationPolicy
from tests.hostile.conftest import StartHostile

DIGITS = "9" * 5000
GENEROUS = ValidationPolicy(schema_budget_ms=30_000)
"""Checking 1,500 $refs against the meta-schema takes about 1.2 s, more on a busy machine."""


def remote_after_local(local: int) -> dict[str, Any]:
    refs = [{"$ref": "#/$defs/a"}] * local + [{"$ref": "http://127.0.0.1:9/evil.json"}]
    return {"$defs": {"a": {}}, "allOf": refs}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        pytest.param('{"$schema": []}', "$schema must be a string (a dialect URI), got list",
                     id="$schema-list"),
        pytest.param('{"$schema": 5}', "$schema must be a string (a dialect URI), got int",
                     id="$schema-int"),
        pytest.param(f'{{"type": "integer", "minimum": {DIGITS}}}', "4300 digits",
                     id="minimum-5000-digits"),
        pytest.param('{"minimum": 1e400}', "out of range of a double", id="minimum-1e400"),
        pytest.param('{"minimum": NaN}', "NaN is not a JSON number", id="NaN"),
        pytest.param('{"title": "\\ud800"}', "lone surrogate", id="lone-surrogate"),
        pytest.param(json.dumps(remote_after_local(1500)),
                     "$ref 'http://127.0.0.1:9/evil.json' is not local", id="remote-after-1500"),
        pytest.param('{"$dynamicRef": "http://127.0.0.1:9/x.json"}',
                     "$dynamicRef 'http://127.0.0.1:9/x.json' is not local", id="dynamicRef"),
        pytest.param('{"$dynamicRef": "#nowhere"}', "$dynamicRef '#nowhere' does not resolve",
                     id="dangling-dynamicRef"),
        pytest.param('{"$defs": {"a": {"$recursiveRef": "http://x/y"}}}', "is not local",
                     id="remote-recursiveRef"),
        pytest.param('"a string"', "must be a JSON object or a boolean, got str", id="string"),
    ],
)  # fmt: skip
async def test_a_bad_schema_is_invalid_argument_before_any_model(
    hostile: StartHostile, schema: str, message: str
) -> None:
    """Before: INTERNAL with a traceback ($schema [] or 5, a 5000-digit number); a remote
    $ref after 1,000 local ones and any $dynamicRef were not checked (models were called)."""
    h = await hostile(validation=GENEROUS)
    outcome = await h.route(schema)
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT, outcome.details
    assert message in outcome.details
    assert "main" not in h.chat_models()
    assert outcome.events == []  # the call never started a chain


async def test_schema_true_accepts_any_json(hostile: StartHostile) -> None:
    """Before: INVALID_ARGUMENT "schema must be a JSON object, got bool"."""
    h = await hostile()
    outcome = await h.route("true", '{"any": [1, "thing"]}')
    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert outcome.reply is not None
    assert outcome.reply.model_used == "ollama_chat/main"
    assert outcome.reply.content.struct_value["any"][1] == "thing"
    # Providers' structured output gets the object form of ``true``.
    first = next(r for r in h.up.chat_requests() if r.body.get("model") == "main")
    assert first.body["format"] == {}


async def test_schema_false_rejects_every_answer(hostile: StartHostile) -> None:
    h = await hostile()
    outcome = await h.route("false", "{}", "[]")
    assert outcome.code is grpc.StatusCode.UNAVAILABLE
    assert [a.reason_category for a in outcome.attempts] == [
        router_pb2.REASON_CATEGORY_SCHEMA_MISMATCH
    ] * 2
    assert "False schema does not allow" in outcome.attempts[0].reason


async def test_refs_inside_embedded_resources_resolve_against_their_own_base(
    hostile: StartHostile,
) -> None:
    """A local $ref in a subschema with its own $id is not refused as unresolvable."""
    h = await hostile()
    schema = {
        "$defs": {
            "a": {"$id": "http://example.com/a", "$defs": {"b": {"type": "string"}},
                  "$ref": "#/$defs/b"},
        },
        "$ref": "http://example.com/a",
    }  # fmt: skip
    outcome = await h.route(schema, '"text"')
    assert outcome.code is grpc.StatusCode.OK, outcome.details


async def test_a_repeated_bad_schema_is_answered_from_the_cache(hostile: StartHostile) -> None:
    h = await hostile()
    first = await h.route('{"$schema": 5}')
    again = await h.route('{"$schema": 5}')
    assert first.details == again.details
    assert again.seconds < 0.1
