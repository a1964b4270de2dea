"""Saying up front what a model's decoder will not enforce: the constraint note.

With native structured output the provider turns the caller's schema into a grammar that
constrains decoding, but grammar decoders drop some keywords: measured on small local
models, every schema miss was such a constraint (a string ``pattern``, ``maximum: 1``
answered with 1e15, ``uniqueItems``). Where the router knows which keywords a model's
decoder drops (``providers/protocols.py``), ``constraint_note`` lists the caller's
constraints of those kinds in words, path by path, for a system message
(``with_note``); the answer is still validated against the caller's whole schema.

The schema is the caller's: the walk visits a bounded number of nodes, and the note a
bounded number of lines with bounded values.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

from llm_router_server.types import Message

MAX_NODES = 2000
"""Schema nodes visited at most."""
MAX_LINES = 40
"""Constraints listed at most."""
MAX_VALUE_CHARS = 200
"""Longest value (a pattern, a bound) quoted."""

HEAD = (
    "The answer must also meet these constraints of its JSON Schema "
    "(they are checked after you answer):"
)


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


DESCRIBE: Mapping[str, Callable[[Any], str | None]] = {
    "pattern": lambda v: f"a string matching the regular expression {_value(v)}",
    "format": lambda v: f"a string in the {_value(v)} format",
    "minLength": lambda v: f"at least {_value(v)} characters",
    "maxLength": lambda v: f"at most {_value(v)} characters",
    "minimum": lambda v: f"at least {_value(v)}",
    "maximum": lambda v: f"at most {_value(v)}",
    "exclusiveMinimum": lambda v: f"greater than {_value(v)}",
    "exclusiveMaximum": lambda v: f"less than {_value(v)}",
    "multipleOf": lambda v: f"a multiple of {_value(v)}",
    "minItems": lambda v: f"at least {_value(v)} items",
    "maxItems": lambda v: f"at most {_value(v)} items",
    "uniqueItems": lambda v: "no item repeated" if v is True else None,
}
"""The keywords a note can say, in the order they are said."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if _NAME.fullmatch(name) else f"{path}[{json.dumps(name)}]"


def _children(node: Mapping[str, Any], path: str) -> list[tuple[Any, str]]:
    """The subschemas of ``node`` with the path of the values they describe."""
    found: list[tuple[Any, str]] = []
    properties = node.get("properties")
    if isinstance(properties, dict):
        found += [(sub, _child(path, str(name))) for name, sub in properties.items()]
    items = node.get("items")
    if isinstance(items, dict):
        found.append((items, f"{path}[*]"))
    prefix = node.get("prefixItems")
    if isinstance(prefix, list):
        found += [(sub, f"{path}[{i}]") for i, sub in enumerate(prefix)]
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        found.append((extra, f"{path}.*"))
    for keyword in ("anyOf", "oneOf", "allOf"):
        options = node.get(keyword)
        if isinstance(options, list):
            found += [(sub, path) for sub in options]
    for keyword in ("$defs", "definitions"):
        defs = node.get(keyword)
        if isinstance(defs, dict):
            found += [(sub, f"#/{keyword}/{name}") for name, sub in defs.items()]
    return found


def constraint_note(schema: Mapping[str, Any], keywords: Collection[str]) -> str | None:
    """The note for the constraints of ``schema`` whose keyword is in ``keywords``; None
    when the schema has none."""
    wanted = [k for k in DESCRIBE if k in keywords]
    if not wanted:
        return None
    lines: list[str] = []
    queue: deque[tuple[Any, str]] = deque([(schema, "$")])
    visited = 0
    while queue and visited < MAX_NODES and len(lines) < MAX_LINES:
        node, path = queue.popleft()
        visited += 1
        if not isinstance(node, dict):
            continue
        said = [text for k in wanted if k in node and (text := DESCRIBE[k](node[k])) is not None]
        if said:
            lines.append(f"- {path}: {'; '.join(said)}")
        queue.extend(_children(node, path))
    return "\n".join([HEAD, *lines]) if lines else None


def with_note(messages: tuple[Message, ...], note: str | None) -> tuple[Message, ...]:
    """The conversation with the note in its system message (a first one when it has none)."""
    if note is None:
        return messages
    if messages and messages[0].role == "system":
        first = Message("system", f"{messages[0].content}\n\n{note}")
        return (first, *messages[1:])
    return (Message("system", note), *messages)
