"""Judging a model's answer.

A free-text answer is rejected when it contains a refusal pattern. With a
schema, an answer is accepted when it is JSON (a fenced ```json block counts)
that validates against the schema, even when a string value inside it happens
to contain a refusal phrase; otherwise it is a refusal when it matches a
pattern, else invalid JSON or a schema mismatch.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import referencing
import referencing.exceptions

from llm_router_server.errors import InvalidRequestError
from llm_router_server.types import Category

# The seed's list: any case-insensitive substring match is a refusal.
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    "nie wiem",
    "I cannot",
    "I can't",
    "as an AI",
    "I don't know",
    "I'm not able",
    "I am not able",
    "I'm unable",
    "I am unable",
    "beyond my capabilities",
)

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n?(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Verdict:
    """The judgement of one answer: accepted (``category`` NONE) or why not."""

    category: Category
    reason: str = ""
    value: Any = None

    @property
    def accepted(self) -> bool:
        return self.category is Category.NONE


@dataclass(frozen=True)
class Schema:
    """A caller's JSON Schema, checked and compiled once per distinct text."""

    document: Mapping[str, Any]
    validator: Any  # a jsonschema Validator instance (jsonschema ships no precise type)

    def first_error(self, value: Any) -> str | None:
        try:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        except Exception as exc:  # jsonschema wraps referencing errors in a private class
            # $refs are checked up front (_check_refs); this is a safety net.
            return f"at $: the schema could not be applied: {type(exc).__name__}"
        if error is None:
            return None
        where = error.json_path if error.path else "$"
        return f"at {where}: {error.message}"


class RefusalDetector:
    """Finds the first configured refusal pattern in a text, ignoring case."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        alternatives = "|".join(re.escape(p) for p in self.patterns if p)
        self._regex = re.compile(alternatives, re.IGNORECASE) if alternatives else None

    def find(self, text: str) -> str | None:
        if self._regex is None:
            return None
        match = self._regex.search(text)
        return match.group(0) if match else None


@functools.lru_cache(maxsize=256)
def compile_schema(text: str) -> Schema:
    """Parse and check a JSON Schema text; cached by text, so repeat callers pay once."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"schema is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidRequestError(f"schema must be a JSON object, got {type(document).__name__}")
    cls = jsonschema.validators.validator_for(document, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(document)
    except jsonschema.exceptions.SchemaError as exc:
        where = exc.json_path if exc.path else "$"
        raise InvalidRequestError(
            f"schema is not a valid JSON Schema at {where}: {exc.message}"
        ) from exc
    # No $ref is ever fetched (jsonschema would retrieve remote URLs by default).
    registry: referencing.Registry[Any] = referencing.Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]  # attrs init
    validator = cls(document, registry=registry)
    _check_refs(document, validator)
    return Schema(document=document, validator=validator)


def _no_retrieval(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs class


def _check_refs(document: Any, validator: Any) -> None:
    """Every ``$ref`` must be local ("#...") and resolve, checked before any model is called."""
    stack: list[Any] = [document]
    refs: list[str] = []
    while stack and len(refs) < 1000:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append(ref)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    for ref in refs:
        if not ref.startswith("#"):
            raise InvalidRequestError(
                f"schema $ref {ref[:80]!r} is not local: only '#...' references are allowed"
            )
        try:
            validator._resolver.lookup(ref)  # the resolver jsonschema itself validates with
        except referencing.exceptions.Unresolvable as exc:
            raise InvalidRequestError(f"schema $ref {ref[:80]!r} does not resolve") from exc


def parse_json_answer(text: str) -> tuple[bool, Any, str]:
    """Parse an answer as JSON, falling back to the first fenced block that parses.

    Returns ``(ok, value, error)``.
    """
    try:
        return True, json.loads(text), ""
    except json.JSONDecodeError as exc:
        error = f"answer is not JSON: {exc}"
    for match in _FENCE.finditer(text):
        try:
            return True, json.loads(match.group(1)), ""
        except json.JSONDecodeError:
            continue
    return False, None, error


def judge(text: str, schema: Schema | None, refusals: RefusalDetector) -> Verdict:
    """Accept or reject one answer text."""
    if schema is None:
        if not text.strip():
            return Verdict(Category.PROVIDER_ERROR, "empty answer")
        pattern = refusals.find(text)
        if pattern is not None:
            return Verdict(Category.REFUSAL, f"refusal pattern matched: {pattern!r}")
        return Verdict(Category.NONE, value=text)

    ok, value, parse_error = parse_json_answer(text)
    schema_error = schema.first_error(value) if ok else None
    if ok and schema_error is None:
        return Verdict(Category.NONE, value=value)
    pattern = refusals.find(text)
    if pattern is not None:
        return Verdict(Category.REFUSAL, f"refusal pattern matched: {pattern!r}")
    if not ok:
        return Verdict(Category.INVALID_JSON, parse_error if text.strip() else "empty answer")
    return Verdict(Category.SCHEMA_MISMATCH, f"schema mismatch {schema_error}")
