"""Re-asking a model whose answer was not valid: the repair turn.

When a model's answer is not JSON or fails the caller's schema, and the model has repair
attempts left (``ModelSpec.repair_attempts``), the chain asks the same model again, before it
moves on: the conversation as the model saw it, then the model's own answer, then a user
turn that says what was wrong with it, path-qualified as the validator says it (``at
$.confidence: 1.5 is greater than the maximum of 1``). Only such answers are repaired: a
refusal, a safety refusal, a provider error or a timeout is not (asking again would not
change it, or the provider is failing), and neither is an answer cut at the token limit
(finish reason ``length``): asked again with the same limit it is cut again (measured: a
small model's runaway string repeated itself on every repair, at a full call's cost). Both
the echoed answer and the error are bounded: they come from a model and from the caller's
schema.
"""

from __future__ import annotations

from llm_router_server.types import Attempt, Category, Message

REPAIRABLE = frozenset({Category.INVALID_JSON, Category.SCHEMA_MISMATCH})
"""Why an answer may be repaired: it was not JSON, or not valid against the schema."""

MAX_ANSWER_CHARS = 8000
"""Longest echo of the model's answer in the repair turn (a longer one is cut)."""
MAX_ERROR_CHARS = 500
"""Longest validation error in the repair turn."""

PROMPT = (
    "Your answer was rejected: {error}\n"
    "Answer again with only the corrected JSON, valid against the schema, and nothing else."
)


def repairable(attempt: Attempt) -> bool:
    """Whether this attempt's answer may be repaired."""
    return attempt.category in REPAIRABLE


def bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying that it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def repair_messages(sent: tuple[Message, ...], answer: str, error: str) -> tuple[Message, ...]:
    """The conversation for a repair: what the model was sent, its answer, what was wrong.

    ``error`` is the rejected attempt's reason. A blank answer is not echoed (providers
    reject empty assistant turns); the user turn then says that it was empty.
    """
    turns = list(sent)
    if answer.strip():
        turns.append(Message("assistant", bounded(answer, MAX_ANSWER_CHARS)))
    turns.append(Message("user", PROMPT.format(error=bounded(error, MAX_ERROR_CHARS))))
    return tuple(turns)
