"""The chain against a real decoder: SmolLM2-135M-Instruct on llama.cpp's server, through Route.

Each test sends requests through the real gRPC server to the real model (and, where the
model's answer is rejected, on to a fake OpenAI-compatible model that answers valid JSON).
Assertions are on validity and the attempt records, never on the model's wording.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from llm_router.v1 import router_pb2
from tests.embedded.conftest import Llama
from tests.support.server import Serve, openai
from tests.support.upstream import Answer, FakeUpstream

pytestmark = pytest.mark.timeout(120)

S = {"type": "string", "maxLength": 30}


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


# shape: (prompt, schema, what the fallback answers)
SHAPES: dict[str, tuple[str, dict[str, Any], Any]] = {
    "enum": (
        "nginx is down after a config change. Should we restart it, roll back, or escalate?",
        obj(action={"enum": ["restart", "rollback", "escalate"]}),
        {"action": "escalate"},
    ),
    "integer": (
        "How many legs does a spider have?",
        obj(legs={"type": "integer", "minimum": 0, "maximum": 100}),
        {"legs": 8},
    ),
    "boolean": ("Is 17 prime?", obj(prime={"type": "boolean"}), {"prime": True}),
    "nested object": (
        "Alice is 30 years old and lives in Paris. Extract the person.",
        obj(person=obj(name=S, age={"type": "integer", "minimum": 0}, city=S)),
        {"person": {"name": "Alice", "age": 30, "city": "Paris"}},
    ),
    "array": (
        "List the three primary colours.",
        obj(colors={"type": "array", "items": S, "minItems": 3, "maxItems": 3}),
        {"colors": ["red", "yellow", "blue"]},
    ),
}

SUCCESS = router_pb2.ATTEMPT_OUTCOME_SUCCESS
INVALID = router_pb2.ATTEMPT_OUTCOME_INVALID


async def test_a_free_text_question_gets_an_answer_from_the_real_model(
    llama: Llama, serve: Serve
) -> None:
    server = await serve([llama.spec(max_tokens=32)])
    reply = await server.route("Is 17 prime? Answer yes or no.")
    assert reply.model_used == llama.spec().model
    [attempt] = reply.attempts
    assert attempt.outcome == SUCCESS
    assert reply.raw_text.strip()
    assert 0 < attempt.usage.completion_tokens <= 32
    assert attempt.usage.prompt_tokens > 0


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_native_structured_output_makes_the_real_model_answer_valid_json(
    shape: str, llama: Llama, serve: Serve, upstream: type[FakeUpstream]
) -> None:
    """The schema goes to llama.cpp as ``response_format``; llama.cpp accepts it and turns it
    into a grammar, so even a 135M model's answer validates, and the fallback is not called."""
    prompt, schema, fallback = SHAPES[shape]
    up = upstream()
    up.default = Answer(json.dumps(fallback))
    server = await serve([llama.spec(), openai(up)])
    reply = await server.route(prompt, schema=json.dumps(schema))
    assert reply.model_used == llama.spec().model
    [attempt] = reply.attempts
    assert attempt.outcome == SUCCESS, attempt.reason
    jsonschema.validate(json.loads(reply.raw_text), schema)
    assert up.chat_requests() == []


async def test_without_native_structured_output_the_real_model_mostly_fails_and_falls_through(
    llama: Llama, serve: Serve, upstream: type[FakeUpstream]
) -> None:
    """The same requests with ``structured_output = false``: the model sees only the prompt.
    Most answers are not JSON matching the schema; those attempts are INVALID and the
    chain takes the next model's answer."""
    up = upstream()
    server = await serve([llama.spec(structured_output=False, max_tokens=48), openai(up)])
    valid = 0
    for prompt, schema, fallback in SHAPES.values():
        up.default = Answer(json.dumps(fallback))
        reply = await server.route(prompt, schema=json.dumps(schema))
        first = reply.attempts[0]
        assert first.model == llama.spec().model
        if first.outcome == SUCCESS:
            valid += 1
            continue
        assert first.outcome == INVALID, first.reason
        assert reply.model_used == "openai/gpt-test"
        assert json.loads(reply.raw_text) == fallback
    assert valid <= 2, f"{valid} of {len(SHAPES)} answers were valid without structured output"


async def test_llama_cpp_accepts_the_schemas_the_router_sends_beyond_the_basic_shapes(
    llama: Llama, serve: Serve
) -> None:
    """$defs/$ref, additionalProperties, pattern, anyOf with null, bounds: no HTTP 400, and
    the answer validates against the whole schema."""
    schema = {
        "$defs": {"count": {"type": "integer", "minimum": 0, "maximum": 99}},
        "type": "object",
        "required": ["device", "errors", "replace", "ticket", "owner"],
        "additionalProperties": False,
        "properties": {
            "device": {"type": "string", "pattern": "^/dev/[a-z]{3}$"},
            "errors": {"$ref": "#/$defs/count"},
            "replace": {"type": "boolean"},
            "ticket": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
            "owner": {"anyOf": [S, {"type": "null"}]},
        },
    }
    server = await serve([llama.spec()])
    reply = await server.route(
        "A disk check found 2 errors on /dev/sda. Report it.", schema=json.dumps(schema)
    )
    [attempt] = reply.attempts
    assert attempt.outcome == SUCCESS, attempt.reason
    jsonschema.validate(json.loads(reply.raw_text), schema)
