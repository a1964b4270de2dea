"""Checking a Route request against the ``Limits`` before any model is called.

Every bound on untrusted input lives here: message count and size, schema size and
nesting depth (counted before the schema is parsed), the ``context`` label's length; the
schema itself is then checked and compiled off the event loop by ``validation/offload.py``.
An error quotes at most ``safe_text.ECHO_CHARS`` of a caller's value.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from llm_router_server.config.model import Limits
from llm_router_server.errors import InvalidRequestError
from llm_router_server.safe_text import echo
from llm_router_server.types import ROLES, Message


def check_messages(messages: Sequence[Message], limits: Limits) -> None:
    """Raise InvalidRequestError naming the first problem with the messages."""
    if not messages:
        raise InvalidRequestError("messages is empty: at least one message is required")
    if len(messages) > limits.max_messages:
        raise InvalidRequestError(f"too many messages: {len(messages)} > {limits.max_messages}")
    for i, message in enumerate(messages):
        if message.role not in ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role is {echo(message.role)}; expected one of: "
                + ", ".join(sorted(ROLES))
            )
        if not message.content.strip():
            raise InvalidRequestError(f"messages[{i}].content is empty")
        if len(message.content) > limits.max_message_chars:
            raise InvalidRequestError(
                f"messages[{i}].content has {len(message.content)} characters; "
                f"the limit is {limits.max_message_chars}"
            )


def check_context(context: str, limits: Limits) -> None:
    """The ``context`` label is kept in every event and logged: it is bounded."""
    if len(context) > limits.max_context_chars:
        raise InvalidRequestError(
            f"context has {len(context)} characters; the limit is {limits.max_context_chars}"
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
