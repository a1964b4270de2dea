"""A caller's JSON Schema as Claude's ``output_format`` takes it (see ``anthropic.py``).

``output_format`` compiles the schema into a grammar for constrained decoding
and rejects (HTTP 400) what the grammar cannot enforce. Anthropic's SDKs
(and litellm, ``AnthropicConfig.filter_anthropic_output_schema``) shape a
schema before sending it; ``output_schema`` does the same, so both provider
paths send the same body:

- the keywords below are dropped and stated in the node's ``description``
  instead ("Note: minimum length: 2."), so the model still reads them;
  ``minItems`` of 0 or 1 is kept (the decoder enforces those);
- ``oneOf`` becomes ``anyOf``;
- an ``enum`` whose values do not all fit the declared ``type`` drops the ``type``;
- every object gets ``additionalProperties: false``, which the API requires.

``output_format_can_express`` says when the forced tool must carry the schema
instead: an open object (its extra keys would be forbidden by the rule above)
or a recursive ``$ref`` (the docs: recursive schemas are not supported). The
chain validates every answer against the caller's original schema. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

_NOTES: Mapping[str, str] = {
    # Keywords output_format rejects -> how the description states them (litellm's words).
    "minItems": "minimum number of items: {}",
    "maxItems": "maximum number of items: {}",
    "uniqueItems": "all array items must be unique",
    "contains": "array must contain an item matching: {}",
    "minContains": "minimum number of matching items: {}",
    "maxContains": "maximum number of matching items: {}",
    "prefixItems": "leading items must match, in order: {}",
    "minimum": "minimum value: {}",
    "maximum": "maximum value: {}",
    "exclusiveMinimum": "exclusive minimum value: {}",
    "exclusiveMaximum": "exclusive maximum value: {}",
    "multipleOf": "must be a multiple of {}",
    "minLength": "minimum length: {}",
    "maxLength": "maximum length: {}",
    "minProperties": "minimum number of properties: {}",
    "maxProperties": "maximum number of properties: {}",
    "patternProperties": "properties whose names match each pattern must satisfy: {}",
    "propertyNames": "property names must satisfy: {}",
    "dependentRequired": "dependent required properties: {}",
    "dependentSchemas": "dependent schemas: {}",
    "unevaluatedProperties": "unevaluated properties must satisfy: {}",
    "if": "conditional (if): {}",
    "then": "conditional (then): {}",
    "else": "conditional (else): {}",
    "not": "must not match: {}",
}
_TYPE_CHECKS: Mapping[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
_MAPS = frozenset({"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"})
_LISTS = frozenset({"allOf", "anyOf", "items", "oneOf", "prefixItems"})
_SINGLES = frozenset(
    {"additionalItems", "additionalProperties", "contains", "else", "if", "items", "not"}
    | {"propertyNames", "then", "unevaluatedItems", "unevaluatedProperties"}
)


def output_format_can_express(schema: Mapping[str, Any]) -> bool:
    """False for an open object anywhere in ``schema``, or a recursive ``$ref``."""
    return not any(_is_open_object(node) for node in _nodes(schema)) and not _recursive(schema)


def output_schema(schema: Any) -> Any:
    """``schema`` shaped for ``output_format`` (a new object; the argument is not changed)."""
    if not isinstance(schema, dict):
        return schema
    minimum_items = schema.get("minItems")
    keeps_min_items = type(minimum_items) is int and minimum_items in (0, 1)
    dropped = [k for k in _NOTES if k in schema and not (k == "minItems" and keeps_min_items)]
    notes = [
        _NOTES[k].format(json.dumps(v) if isinstance(v, dict | list) else v)
        for k in dropped
        if (v := schema[k]) is not False  # a false flag asks for nothing
    ]
    result: dict[str, Any] = {}
    if notes:
        note = "Note: " + ", ".join(notes) + "."
        result["description"] = (
            f"{schema['description']} {note}" if schema.get("description") else note
        )
    drop_type = _enum_conflicts_with_type(schema)
    for key, value in schema.items():
        if key in dropped or (key == "type" and drop_type) or (key == "description" and notes):
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            result[key] = {name: output_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            result[key] = output_schema(value)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            result["anyOf"] = result.get("anyOf", []) + [output_schema(sub) for sub in value]
        elif key == "allOf" and isinstance(value, list):
            result[key] = [output_schema(sub) for sub in value]
        else:
            result[key] = value
    kind = result.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind):
        result["additionalProperties"] = False
    return result


def _enum_conflicts_with_type(schema: Mapping[str, Any]) -> bool:
    values, kind = schema.get("enum"), schema.get("type")
    if not isinstance(values, list) or kind is None:
        return False
    if isinstance(kind, list):
        return True
    check = _TYPE_CHECKS.get(kind) if isinstance(kind, str) else None
    return check is not None and not all(check(v) for v in values)


def _nodes(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every subschema of ``schema`` (itself included), breadth first."""
    level: list[Mapping[str, Any]] = [schema]
    while level:
        yield from level
        level = [sub for node in level for sub in _children(node)]


def _children(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key, value in node.items():
        if key in _MAPS and isinstance(value, dict):
            yield from (sub for sub in value.values() if isinstance(sub, dict))
        elif key in _LISTS and isinstance(value, list):
            yield from (sub for sub in value if isinstance(sub, dict))
        elif key in _SINGLES and isinstance(value, dict):
            yield value


def _is_open_object(node: Mapping[str, Any]) -> bool:
    extra = node.get("additionalProperties")
    if extra is True or isinstance(extra, dict) or "patternProperties" in node:
        return True
    kind = node.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
    return is_object and "properties" not in node and extra is not False


def _recursive(schema: Mapping[str, Any]) -> bool:
    """Whether a ``$ref`` leads back to a schema that contains it, directly or not.

    The chain accepts only local references that resolve (``#`` or ``#/$defs/NAME``,
    ``#/definitions/NAME``); any other local pointer is treated as recursive, so
    it goes to the forced tool, whose input schema takes any reference.
    """
    defs: dict[str, Mapping[str, Any]] = {"#": schema}
    for group in ("$defs", "definitions"):
        named = schema.get(group)
        if isinstance(named, dict):
            defs.update(
                (f"#/{group}/{name}", sub) for name, sub in named.items() if isinstance(sub, dict)
            )
    refs = {
        pointer: {r for n in _nodes(_without_defs(sub)) if isinstance(r := n.get("$ref"), str)}
        for pointer, sub in defs.items()
    }
    if any(ref not in defs for targets in refs.values() for ref in targets):
        return True
    # Depth-first from each definition, without recursion (a schema may chain many of them);
    # a cycle among definitions the root never reaches counts too: they are sent all the same.
    finished: set[str] = set()
    for start in refs:
        if start in finished:
            continue
        open_ = {start}
        stack = [(start, iter(refs[start]))]
        while stack:
            pointer, targets = stack[-1]
            target = next(targets, None)
            if target is None:
                open_.discard(pointer)
                finished.add(pointer)
                stack.pop()
            elif target in open_:
                return True
            elif target not in finished:
                open_.add(target)
                stack.append((target, iter(refs[target])))
    return False


def _without_defs(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` without its ``$defs``/``definitions`` (they are walked on their own)."""
    if "$defs" not in schema and "definitions" not in schema:
        return schema
    return {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
