"""One question to one model: the provider call within its time, and the verdict on the answer.

``ask`` is what every attempt of the chain does, a model's first answer and its repairs
alike: call the provider with ``min(model timeout, time left)``, judge the answer
(``judging.py``), and price the attempt (``pricing/``). A provider error and a timeout are
attempts like any other, with their category; they are returned, not raised.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from llm_router_server.errors import ProviderError, ProviderTimeoutError
from llm_router_server.pricing.book import PriceBook
from llm_router_server.pricing.price import usage_cost
from llm_router_server.providers.base import Provider
from llm_router_server.routing.call import ms, rejected
from llm_router_server.routing.judging import RefusalDetector, Schema, judge
from llm_router_server.types import (
    Attempt,
    Category,
    CompletionRequest,
    Message,
    ModelSpec,
    Outcome,
)


@dataclass(frozen=True)
class Asked:
    """One attempt and what came with it."""

    attempt: Attempt
    value: object
    """The parsed answer (when accepted)."""
    raw_text: str
    """The model's answer text ("" when there was none)."""
    error: ProviderError | None
    """The provider's failure, for the breaker (None when the model answered)."""
    truncated: bool = False
    """The answer was cut at the token limit: asking again would cut it again."""


@dataclass(frozen=True)
class Question:
    """What the chain asks one model: the conversation as sent, and how to judge it."""

    spec: ModelSpec
    messages: tuple[Message, ...]
    schema: Schema | None
    refusals: RefusalDetector
    repair: int = 0
    """0 for the model's first answer; n for its n-th repair."""


async def ask(provider: Provider, question: Question, left: float, prices: PriceBook) -> Asked:
    """Ask, wait at most ``min(spec.timeout, left)``, judge, and price the attempt."""
    spec, schema = question.spec, question.schema
    timeout = min(spec.timeout, left)
    request = CompletionRequest(
        messages=question.messages,
        schema=schema.document if schema is not None and spec.structured_output else None,
        timeout=timeout,
    )
    started = time.monotonic()
    error: ProviderError
    try:
        async with asyncio.timeout(timeout):
            completion = await provider.complete(spec, request)
    except TimeoutError:
        why = "caller's deadline" if timeout < spec.timeout else "timeout"
        error = ProviderTimeoutError(f"no answer within {timeout:.3g}s ({why})")
    except ProviderError as exc:
        error = exc
    else:
        price = await prices.price(spec)
        verdict = judge(completion.text, schema, question.refusals)
        if verdict.accepted:
            outcome = Outcome.SUCCESS
        elif verdict.category in (Category.INVALID_JSON, Category.SCHEMA_MISMATCH):
            outcome = Outcome.INVALID
        else:
            outcome = Outcome.REJECTED
        attempt = Attempt(
            model=spec.model,
            outcome=outcome,
            category=verdict.category,
            reason=f"{verdict.reason} (cut at the token limit)"
            if completion.truncated and not verdict.accepted
            else verdict.reason,
            latency_ms=ms(time.monotonic() - started),
            usage=completion.usage,
            repair=question.repair,
            cost_usd=usage_cost(price, completion.usage),
        )
        return Asked(attempt, verdict.value, completion.text, None, completion.truncated)
    cost = usage_cost(await prices.price(spec), None)  # no usage: 0 when free, else unknown
    attempt = rejected(spec, error.category, str(error), started, question.repair, cost)
    return Asked(attempt, None, "", error)
