"""Checking and compiling a caller's JSON Schema, and how costly it is to apply.

``compile_schema(text)`` does the full check and raises ``InvalidRequestError`` (the caller's
INVALID_ARGUMENT) for anything wrong with the schema, including exceptions jsonschema itself
raises on odd input. It costs milliseconds even for a small schema (the meta-schema check),
so ``offload.py`` runs it in a validation worker under a time budget; the event loop then
only rebuilds a cheap schema's validator (``build_schema``, no check: about 0.1 ms).

A schema is *cheap* when its validation work is bounded by (schema nodes) x (answer size)
with a small constant: none of the keywords whose cost is not (``pattern`` and
``patternProperties``: backtracking regexes; ``uniqueItems``: quadratic; ``$ref``,
``$dynamicRef``, ``$recursiveRef``: fan-out; ``unevaluated*``: re-validation of subtrees).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import referencing
import referencing.exceptions
import referencing.jsonschema

from llm_router_server.errors import InvalidRequestError
from llm_router_server.routing.validation.answers import loads, text_problem

if TYPE_CHECKING:
    from referencing._core import Resolver  # the class has no public alias

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
COSTLY_KEYWORDS = frozenset(
    {"pattern", "patternProperties", "uniqueItems", "unevaluatedProperties", "unevaluatedItems"}
).union(REF_KEYWORDS)
MAX_EXPANSION = 200_000
"""Most subschemas one pass over an answer may apply once every ``$ref`` is followed: a
``$ref`` fan-out (``allOf: [{$ref: next}, {$ref: next}]`` twenty levels deep is a million)
is refused before any model is called."""


@dataclass(frozen=True)
class SchemaFacts:
    """What a worker's check found out about a schema: sent back to the event loop."""

    cheap: bool
    """No keyword whose cost is not bounded by (nodes) x (answer size): see the module doc."""
    nodes: int
    """JSON values in the schema document: the work per answer character of a cheap schema."""


@dataclass(frozen=True)
class CompiledSchema:
    """A checked schema with its validator."""

    text: str
    document: Mapping[str, Any] | bool
    validator: Any  # a jsonschema Validator instance (jsonschema ships no precise type)
    facts: SchemaFacts

    @property
    def provider_schema(self) -> Mapping[str, Any]:
        """The schema as an object, for providers' structured output (``true`` is ``{}``)."""
        if isinstance(self.document, bool):
            return {} if self.document else {"not": {}}
        return self.document

    def first_error(self, value: Any) -> str | None:
        """The most relevant validation error as ``at <path>: <message>``, or None."""
        try:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        except Exception as exc:  # jsonschema raises odd things on odd schemas and values
            return f"at $: the schema could not be applied: {type(exc).__name__}"
        if error is None:
            return None
        where = error.json_path if error.path else "$"
        return f"at {where}: {error.message}"


def _no_retrieval(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs class


def _parse(text: str) -> Mapping[str, Any] | bool:
    try:
        document = loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"schema is not valid JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidRequestError(f"schema is not usable JSON: {str(exc)[:120]}") from exc
    if not isinstance(document, dict | bool):
        raise InvalidRequestError(
            f"schema must be a JSON object or a boolean, got {type(document).__name__}"
        )
    return document


def _validator_class(document: Mapping[str, Any] | bool) -> Any:
    if isinstance(document, dict) and "$schema" in document:
        dialect = document["$schema"]
        if not isinstance(dialect, str):
            raise InvalidRequestError(
                f"schema $schema must be a string (a dialect URI), got {type(dialect).__name__}"
            )
    return jsonschema.validators.validator_for(document, default=jsonschema.Draft202012Validator)


def build_schema(text: str, facts: SchemaFacts) -> CompiledSchema:
    """The validator of a schema a worker has already checked (no meta-schema check)."""
    document = _parse(text)
    cls = _validator_class(document)
    # No $ref is ever fetched (jsonschema would retrieve remote URLs by default).
    registry: referencing.Registry[Any] = referencing.Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]  # attrs init
    return CompiledSchema(text, document, cls(document, registry=registry), facts)


def compile_schema(text: str) -> CompiledSchema:
    """Parse, check and compile a schema text; raise InvalidRequestError saying what is wrong."""
    try:
        return _compile(text)
    except InvalidRequestError:
        raise
    except RecursionError as exc:
        raise InvalidRequestError("schema could not be checked: it recurses too deep") from exc
    except Exception as exc:  # a schema jsonschema or referencing chokes on is still bad input
        why = f"{type(exc).__name__}: {exc}"[:200]
        raise InvalidRequestError(f"schema could not be checked: {why}") from exc


def _compile(text: str) -> CompiledSchema:
    document = _parse(text)
    cls = _validator_class(document)
    try:
        cls.check_schema(document)
    except jsonschema.exceptions.SchemaError as exc:
        where = exc.json_path if exc.path else "$"
        raise InvalidRequestError(
            f"schema is not a valid JSON Schema at {where}: {exc.message[:300]}"
        ) from exc
    nodes, problem = _survey(document)
    if problem is not None:
        raise InvalidRequestError(f"schema is not usable: {problem}")
    schema = build_schema(text, SchemaFacts(cheap=True, nodes=nodes))
    cheap = _check_refs(schema, cls)
    return CompiledSchema(text, document, schema.validator, SchemaFacts(cheap, nodes))


def _survey(document: Any) -> tuple[int, str | None]:
    """Count the JSON values of a schema; find strings and numbers providers cannot be sent."""
    nodes = 0
    stack = [document]
    while stack:
        node = stack.pop()
        nodes += 1
        if isinstance(node, dict):
            stack.extend(node.values())
            stack.extend(node.keys())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and (problem := text_problem(node)) is not None:
            return nodes, f"a string {problem}"
        elif isinstance(node, float) and node in (float("inf"), float("-inf")):
            return nodes, "a number is out of range of a double"
    return nodes, None


def _check_refs(schema: CompiledSchema, cls: Any) -> bool:
    """Every ``$ref``/``$dynamicRef``/``$recursiveRef`` must resolve inside the schema (nothing
    is fetched) and the references must not expand past ``MAX_EXPANSION`` subschemas.
    Returns whether the schema is cheap (no costly keyword anywhere)."""
    spec = referencing.jsonschema.specification_with(
        cls.ID_OF(cls.META_SCHEMA) or "urn:unknown-dialect",
        default=referencing.jsonschema.DRAFT202012,
    )
    root: Resolver[Any] = schema.validator._resolver  # what jsonschema resolves with
    cheap = True
    # Iterative post-order walk: the expanded size of a subschema is 1 + its subschemas' +
    # its references' targets'; a reference back into the walk's own path (recursion, which
    # only goes as deep as the answer does) counts 1.
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Resolver[Any], Any, list[int] | None]] = [(root, schema.document, None)]
    while stack:
        resolver, contents, children = stack.pop()
        key = id(contents)
        if children is not None:  # second visit: all children are sized
            on_path.discard(key)
            total = 1 + sum(size.get(c, 1) for c in children)
            size[key] = min(total, MAX_EXPANSION + 1)
            if total > MAX_EXPANSION:
                raise InvalidRequestError(
                    f"schema expands to more than {MAX_EXPANSION} subschemas through its "
                    "references ($ref fan-out)"
                )
            continue
        if key in size or key in on_path or not isinstance(contents, dict):
            continue
        on_path.add(key)
        if cheap and not COSTLY_KEYWORDS.isdisjoint(contents):
            cheap = False
        following: list[tuple[Resolver[Any], Any]] = []
        resource = spec.create_resource(contents)  # as jsonschema does: no dialect guessing
        inner = resolver.in_subresource(resource)
        for keyword in REF_KEYWORDS:
            ref = contents.get(keyword)
            if not isinstance(ref, str):
                continue
            try:
                resolved = inner.lookup(ref)
            except referencing.exceptions.Unresolvable as exc:
                where = "is not local: only references inside the schema are allowed"
                if ref.startswith("#"):
                    where = "does not resolve"
                raise InvalidRequestError(f"schema {keyword} {ref[:80]!r} {where}") from exc
            following.append((resolved.resolver, resolved.contents))
        following.extend((inner, sub) for sub in spec.subresources_of(contents))
        stack.append((resolver, contents, [id(c) for _, c in following]))
        stack.extend((r, c, None) for r, c in following)
    return cheap
