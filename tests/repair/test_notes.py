"""The words the router adds: the repair turn (bounded echo and error) and the constraint note
(what a decoder drops, path by path, bounded), and where each is sent: only to a model whose
decoder is known to drop a keyword the schema uses, and only when its config allows it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from llm_router_server.providers.protocols import unenforced_keywords
from llm_router_server.routing.constraints import (
    HEAD,
    MAX_LINES,
    MAX_VALUE_CHARS,
    constraint_note,
    with_note,
)
from llm_router_server.routing.repair import (
    MAX_ANSWER_CHARS,
    MAX_ERROR_CHARS,
    repair_messages,
)
from llm_router_server.types import Message, ModelSpec
from tests.support.server import Serve, ollama, openai
from tests.support.upstream import Answer, FakeUpstream

pytestmark = pytest.mark.timeout(60)

OLLAMA_DROPS = unenforced_keywords(ModelSpec("ollama_chat/x", timeout=1))
SCHEMA = {
    "type": "object",
    "required": ["code", "confidence", "tags"],
    "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "step": {"type": "integer", "multipleOf": 5},
        "plain": {"type": "string"},
    },
}
VALID = '{"code": "ABC-1", "confidence": 0.5, "tags": ["a"]}'


def test_the_note_says_each_dropped_constraint_at_its_path() -> None:
    note = constraint_note(SCHEMA, OLLAMA_DROPS)
    assert note is not None
    assert note.splitlines() == [
        HEAD,
        "- $.code: a string matching the regular expression ^[A-Z]{3}-[0-9]+$",
        "- $.confidence: at least 0; at most 1",
        "- $.tags: no item repeated",
        "- $.step: a multiple of 5",
    ]


def test_the_note_follows_items_defs_and_alternatives() -> None:
    schema = {
        "$defs": {"Pct": {"type": "number", "maximum": 100}},
        "type": "array",
        "items": {"anyOf": [{"type": "string", "format": "email"}, {"$ref": "#/$defs/Pct"}]},
        "properties": {"odd name": {"exclusiveMinimum": 2}},
    }
    note = constraint_note(schema, OLLAMA_DROPS)
    assert note is not None
    lines = note.splitlines()[1:]
    assert '- $["odd name"]: greater than 2' in lines
    assert "- $[*]: a string in the email format" in lines
    assert "- #/$defs/Pct: at most 100" in lines


def test_no_note_without_a_dropped_keyword() -> None:
    assert (
        constraint_note({"type": "object", "properties": {"a": {"enum": [1]}}}, OLLAMA_DROPS)
        is None
    )
    assert constraint_note(SCHEMA, frozenset()) is None


def test_the_note_is_bounded_for_a_hostile_schema() -> None:
    huge = "x" * 100_000
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "pattern": huge} for i in range(500)},
    }
    note = constraint_note(schema, OLLAMA_DROPS)
    assert note is not None
    lines = note.splitlines()
    assert len(lines) == 1 + MAX_LINES
    assert all(len(line) < MAX_VALUE_CHARS + 80 for line in lines)
    deep: dict[str, Any] = {"maximum": 1}
    for _ in range(5000):
        deep = {"items": deep}
    assert constraint_note(deep, OLLAMA_DROPS) is None  # the walk stops; nothing is said


def test_the_note_joins_an_existing_system_message() -> None:
    user = Message("user", "hi")
    assert with_note((user,), "NOTE") == (Message("system", "NOTE"), user)
    system = Message("system", "Be brief.")
    assert with_note((system, user), "NOTE") == (Message("system", "Be brief.\n\nNOTE"), user)
    assert with_note((user,), None) == (user,)


def test_the_repair_turn_bounds_the_echo_and_the_error() -> None:
    sent = (Message("user", "q"),)
    turns = repair_messages(sent, "a" * (MAX_ANSWER_CHARS * 3), "e" * (MAX_ERROR_CHARS * 3))
    assert turns[0] == sent[0]
    assert turns[1].role == "assistant" and len(turns[1].content) == MAX_ANSWER_CHARS
    assert turns[2].role == "user" and len(turns[2].content) < MAX_ERROR_CHARS + 200
    # An empty answer is not echoed (providers refuse empty assistant turns).
    blank = repair_messages(sent, "  ", "empty answer")
    assert [t.role for t in blank] == ["user", "user"]


def test_only_ollama_is_known_to_drop_keywords() -> None:
    assert {"pattern", "maximum", "uniqueItems", "multipleOf"} <= OLLAMA_DROPS
    assert unenforced_keywords(ModelSpec("ollama/llama3", timeout=1)) == OLLAMA_DROPS
    for model in ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5-20251001", "gemini/x"):
        assert unenforced_keywords(ModelSpec(model, timeout=1)) == frozenset()


def system_of(body: Any) -> str:
    first = body["messages"][0]
    return str(first["content"]) if first["role"] == "system" else ""


async def test_ollama_is_told_the_dropped_constraints_and_the_answer_is_still_validated(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.default = Answer('{"code": "abc", "confidence": 0.5, "tags": ["a"]}')  # bad pattern
    cloud.default = Answer(VALID)
    server = await serve([ollama(local, repair_attempts=0), openai(cloud)])
    reply = await server.route("q", schema=json.dumps(SCHEMA))
    assert reply.attempts[0].reason.startswith("schema mismatch at $.code")
    [asked] = local.chat_requests()
    assert system_of(asked.body).startswith(HEAD)
    assert "- $.confidence: at least 0; at most 1" in system_of(asked.body)
    assert asked.body["format"] == SCHEMA  # the decoder still gets the whole schema
    # The cloud model is not known to drop anything: no note.
    [cloud_asked] = cloud.chat_requests()
    assert HEAD not in json.dumps(cloud_asked.body)


@pytest.mark.parametrize(
    "spec_of",
    [
        lambda up: ollama(up, constraint_notes=False),
        lambda up: ollama(up, structured_output=False),
        lambda up: openai(up),
    ],
    ids=["notes-off", "no-structured-output", "openai-wire"],
)
async def test_no_note_when_switched_off_or_not_known(
    serve: Serve, upstream: Callable[[], FakeUpstream], spec_of: Callable[[FakeUpstream], ModelSpec]
) -> None:
    up = upstream()
    up.default = Answer(VALID)
    server = await serve([spec_of(up)])
    await server.route("q", schema=json.dumps(SCHEMA))
    [asked] = up.chat_requests()
    assert HEAD not in json.dumps(asked.body)
