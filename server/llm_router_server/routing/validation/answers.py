"""What an answer must be to be accepted: JSON that parses safely, content that can be delivered.

An accepted answer reaches the caller as ``RouteResponse.content`` (a ``google.protobuf.Value``:
parsed JSON, or the free text) and ``raw_text`` (a protobuf string). So a text with a lone
surrogate cannot be delivered (protobuf strings are UTF-8), nor a number that is not a finite
double, nor content nested deeper than protobuf's recursion limit of 100 messages lets a client
decode (a JSON object costs three levels: Value, Struct, map entry; a list two).

These functions are pure and cheap per character; they run inline for small answers and in a
validation worker for large ones (``offload.py``), so both paths decide alike.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_CONTENT_DEPTH = 32
"""Deepest nesting of objects and lists in accepted JSON content. 33 nested objects is the
most a protobuf client decodes (measured with protobuf 7, upb and pure Python alike: 100
levels); 32 keeps a margin and equals the default ``limits.max_schema_depth``."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n?(.*?)```", re.DOTALL)


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as a protobuf string, or None when it can."""
    if text.isascii():
        return None
    match = _SURROGATE.search(text)
    if match is None:
        return None
    return f"has a lone surrogate (U+{ord(match.group()):04X}) at index {match.start()}"


def content_problem(value: Any, max_depth: int = MAX_CONTENT_DEPTH) -> str | None:
    """Why parsed JSON ``value`` cannot be delivered as a protobuf Value, or None."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "$")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem is not None:
                return f"the string at {where} {problem}"
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                return f"the number at {where} is out of range of a double"
        elif isinstance(node, int):
            try:
                float(node)
            except OverflowError:
                return f"the number at {where} is out of range of a double"
        elif isinstance(node, dict | list):
            if depth >= max_depth:
                return f"it nests deeper than {max_depth} levels (at {where})"
            if isinstance(node, dict):
                for key, item in node.items():
                    problem = text_problem(key)
                    if problem is not None:
                        return f"a key in {where} {problem}"
                    stack.append((item, depth + 1, f"{where}.{key[:40]}"))
            else:
                stack.extend((item, depth + 1, f"{where}[{i}]") for i, item in enumerate(node))
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one for all: json.loads with
# keyword arguments would build a decoder per call (3 us of a 20 us judgement)


def loads(text: str) -> Any:
    """``json.loads`` that refuses ``NaN`` and ``Infinity`` (not JSON); raises ValueError or
    RecursionError (nesting deeper than the interpreter's recursion limit)."""
    return _DECODER.decode(text)


def _parse(text: str) -> tuple[bool, Any, str]:
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        return False, None, f"answer is not JSON: {exc}"
    except RecursionError:
        return False, None, "answer is not usable JSON: it nests too deep to parse"
    except ValueError as exc:  # a number of more than 4300 digits, NaN, Infinity
        return False, None, f"answer is not usable JSON: {str(exc)[:120]}"
    problem = content_problem(value)
    if problem is not None:
        return False, None, f"answer is not usable JSON: {problem}"
    return True, value, ""


def parse_json_answer(text: str) -> tuple[bool, Any, str]:
    """Parse an answer as JSON, falling back to the first fenced block that parses; the
    content must be deliverable (``content_problem``). Returns ``(ok, value, error)``."""
    ok, value, error = _parse(text)
    if ok or not error.startswith("answer is not JSON"):
        return ok, value, error
    for match in _FENCE.finditer(text):
        block_ok, block_value, block_error = _parse(match.group(1))
        if block_ok:
            return True, block_value, ""
        if not block_error.startswith("answer is not JSON"):
            return False, None, block_error
    return False, None, error
