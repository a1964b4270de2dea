"""Judging a model's answer, and checking a request before any model is called.

A free-text answer is rejected when it contains a refusal pattern. With a
schema, an answer is accepted when it is JSON (a fenced ```json block counts)
that validates against the schema, even when a string value inside it happens
to contain a refusal phrase; otherwise it is a refusal when it matches a
pattern, else invalid JSON or a schema mismatch.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llm_router_server.errors import InvalidRequestError
from llm_router_server.routing.validation.answers import parse_json_answer, text_problem
from llm_router_server.types import ROLES, Category, Message

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


@dataclass(frozen=True)
class Verdict:
    """The judgement of one answer: accepted (``category`` NONE) or why not."""

    category: Category
    reason: str = ""
    value: Any = None

    @property
    def accepted(self) -> bool:
        return self.category is Category.NONE


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


class Schema(Protocol):
    """A compiled schema, as ``judge`` applies it (``validation/schemas.py``)."""

    def first_error(self, value: Any) -> str | None: ...


MAX_REASON_CHARS = 500
"""Longest reason kept from a judgement (jsonschema quotes the offending value)."""


def _short(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return reason[: MAX_REASON_CHARS - 3] + "..."


def judge(text: str, schema: Schema | None, refusals: RefusalDetector) -> Verdict:
    """Accept or reject one answer text.

    An accepted answer can always be delivered: its text and content have no lone
    surrogate, its numbers are finite doubles, its nesting is bounded (``answers.py``).
    Pure and synchronous: ``validation/offload.py`` decides where it runs.
    """
    problem = text_problem(text)
    if schema is None:
        if not text.strip():
            return Verdict(Category.PROVIDER_ERROR, "empty answer")
        pattern = refusals.find(text)
        if pattern is not None:
            return Verdict(Category.REFUSAL, f"refusal pattern matched: {pattern!r}")
        if problem is not None:
            return Verdict(Category.PROVIDER_ERROR, f"answer text {problem}")
        return Verdict(Category.NONE, value=text)

    ok, value, parse_error = parse_json_answer(text)
    if ok and problem is not None:
        ok, parse_error = False, f"answer text {problem}"
    schema_error = schema.first_error(value) if ok else None
    if ok and schema_error is None:
        return Verdict(Category.NONE, value=value)
    pattern = refusals.find(text)
    if pattern is not None:
        return Verdict(Category.REFUSAL, f"refusal pattern matched: {pattern!r}")
    if not ok:
        return Verdict(Category.INVALID_JSON, parse_error if text.strip() else "empty answer")
    return Verdict(Category.SCHEMA_MISMATCH, _short(f"schema mismatch {schema_error}"))


@dataclass(frozen=True)
class Limits:
    """Bounds on a Route request, checked before any model is called."""

    max_messages: int = 200
    """Most messages one request may carry."""
    max_message_chars: int = 200_000
    """Longest content of one message, in characters."""
    max_schema_chars: int = 100_000
    """Longest schema text, in characters."""
    max_schema_depth: int = 32
    """Deepest nesting of objects and arrays in the schema."""


def check_messages(messages: Sequence[Message], limits: Limits) -> None:
    """Raise InvalidRequestError naming the first problem with the messages."""
    if not messages:
        raise InvalidRequestError("messages is empty: at least one message is required")
    if len(messages) > limits.max_messages:
        raise InvalidRequestError(f"too many messages: {len(messages)} > {limits.max_messages}")
    for i, message in enumerate(messages):
        if message.role not in ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role is {message.role!r}; expected one of: "
                + ", ".join(sorted(ROLES))
            )
        if not message.content.strip():
            raise InvalidRequestError(f"messages[{i}].content is empty")
        if len(message.content) > limits.max_message_chars:
            raise InvalidRequestError(
                f"messages[{i}].content has {len(message.content)} characters; "
                f"the limit is {limits.max_message_chars}"
            )


def check_schema_text(text: str, limits: Limits) -> None:
    """Check a (non-empty) schema text against the limits; ``validation/`` compiles it."""
    if len(text) > limits.max_schema_chars:
        raise InvalidRequestError(
            f"schema has {len(text)} characters; the limit is {limits.max_schema_chars}"
        )
    depth = nesting_depth(text)
    if depth > limits.max_schema_depth:
        raise InvalidRequestError(
            f"schema nests {depth} levels deep; the limit is {limits.max_schema_depth}"
        )


@functools.lru_cache(maxsize=256)
def nesting_depth(text: str) -> int:
    """Deepest ``{``/``[`` nesting of a JSON text, outside strings; counted before parsing,
    so a hostile schema cannot exhaust the parser's recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
