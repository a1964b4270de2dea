"""One question to one model: the provider call within its time, and the verdict on the answer.

``Asker.ask`` is what every attempt of the chain does, a model's first answer and its
repairs alike: call the provider with ``min(model timeout, time left)`` and the observer's
headers, reject an answer longer than ``limits.max_answer_chars`` unread, judge the others
(``validation/offload.py``: on the loop when provably cheap, else in a worker, within the
caller's deadline), and price the attempt (``pricing/``). A provider error and a timeout
are attempts like any other, with their category; they are returned, not raised.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from llm_router_server.errors import ProviderError, timeout_error
from llm_router_server.pricing.book import PriceBook
from llm_router_server.pricing.price import usage_cost
from llm_router_server.providers.base import Provider
from llm_router_server.routing.call import ms, rejected
from llm_router_server.routing.judging import RefusalDetector
from llm_router_server.routing.validation.offload import CheckedSchema, Validation
from llm_router_server.types import (
    Attempt,
    Category,
    CompletionRequest,
    Deadline,
    Message,
    ModelSpec,
    Outcome,
)

INVALID = frozenset({Category.INVALID_JSON, Category.SCHEMA_MISMATCH, Category.VALIDATION_TIMEOUT})
"""Verdicts whose outcome is INVALID (the answer came, but is not valid)."""


@dataclass(frozen=True)
class Asked:
    """One attempt and what came with it."""

    attempt: Attempt
    value: object
    """The parsed answer (when accepted)."""
    raw_text: str
    """The model's answer text ("" when there was none, or it was too large to read)."""
    error: ProviderError | None
    """The provider's failure, for the breaker (None when the model answered)."""
    truncated: bool = False
    """The answer was cut at the token limit: asking again would cut it again."""


@dataclass(frozen=True)
class Question:
    """What the chain asks one model: the conversation as sent, and the schema to judge by."""

    spec: ModelSpec
    messages: tuple[Message, ...]
    schema: CheckedSchema | None
    repair: int = 0
    """0 for the model's first answer; n for its n-th repair."""


@dataclass(frozen=True)
class Asker:
    """What every question of a router shares: the provider, the judge, the prices."""

    provider: Provider
    validation: Validation
    refusals: RefusalDetector
    prices: PriceBook
    max_answer_chars: int

    async def ask(
        self, question: Question, left: float, headers: Mapping[str, str], deadline: Deadline
    ) -> Asked:
        """Ask, wait at most ``min(spec.timeout, left)``, judge, and price the attempt."""
        spec, schema = question.spec, question.schema
        timeout = min(spec.timeout, left)
        request = CompletionRequest(
            messages=question.messages,
            schema=schema.provider_schema
            if schema is not None and spec.structured_output
            else None,
            timeout=timeout,
            headers=headers,
        )
        started = time.monotonic()
        error: ProviderError
        try:
            async with asyncio.timeout(timeout):
                completion = await self.provider.complete(spec, request)
        except TimeoutError:
            error = timeout_error(timeout, spec.timeout)
        except ProviderError as exc:
            error = exc
        else:
            cost = usage_cost(await self.prices.price(spec), completion.usage)
            if len(completion.text) > self.max_answer_chars:
                reason = (
                    f"answer too large: {len(completion.text)} characters; the limit is "
                    f"{self.max_answer_chars} (limits.max_answer_chars)"
                )
                attempt = rejected(spec, Category.PROVIDER_ERROR, reason, started, question.repair)
                attempt = replace(attempt, usage=completion.usage, cost_usd=cost)
                return Asked(attempt, None, "", None)
            wait = None if math.isinf(deadline.expires_at) else max(deadline.remaining(), 0.0)
            verdict = await self.validation.judge(completion.text, schema, self.refusals, wait=wait)
            if verdict.accepted:
                outcome = Outcome.SUCCESS
            elif verdict.category in INVALID:
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
                cost_usd=cost,
                response_model=completion.model,
            )
            return Asked(attempt, verdict.value, completion.text, None, completion.truncated)
        price = await self.prices.price(spec)
        # No usage: 0 if free or the provider does not bill this error, else unknown.
        cost = 0.0 if price is not None and error.billed is False else usage_cost(price, None)
        attempt = rejected(spec, error.category, str(error), started, question.repair, cost)
        return Asked(attempt, None, "", error)
