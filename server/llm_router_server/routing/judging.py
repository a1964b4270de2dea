"""Judging a model's answer.

A free-text answer is rejected when it contains a refusal pattern. With a
schema, an answer is accepted when it is JSON (a fenced ```json block counts)
that validates against the schema, even when a string value inside it happens
to contain a refusal phrase; otherwise it is a refusal when it matches a
pattern, else invalid JSON or a schema mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llm_router_server.routing.validation.answers import parse_json_answer, text_problem
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
