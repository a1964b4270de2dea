"""Where a schema is checked and an answer judged: inline when provably cheap, else in a worker.

Checking a new schema always runs in a worker (the meta-schema check alone costs 2 ms for
the smallest schema, 0.5 s for 100 KB), under ``schema_budget_ms``; out of budget, the call
is INVALID_ARGUMENT before any model is called. Verdicts are cached by schema text in a
cache bounded by bytes (a refused schema is remembered too, so repeating it costs nothing).

An answer is judged on the event loop only when that is provably cheap: free text of at
most ``INLINE_TEXT_CHARS``, or JSON of at most ``INLINE_ANSWER_CHARS`` against a cheap schema
(``schemas.py``) whose nodes times the answer's characters stay under ``INLINE_WORK``.
Everything else goes to a worker under ``answer_budget_ms``; out of budget, the answer is
rejected as ``VALIDATION_TIMEOUT`` and the chain goes on. Measurements: docs/validation.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from llm_router_server.config.model import ValidationPolicy
from llm_router_server.errors import InvalidRequestError
from llm_router_server.routing.judging import RefusalDetector, Verdict, judge
from llm_router_server.routing.validation.answers import loads
from llm_router_server.routing.validation.cache import ByteBoundedCache, schema_cost
from llm_router_server.routing.validation.pool import (
    BudgetExceededError,
    WorkerFailedError,
    WorkerPool,
)
from llm_router_server.routing.validation.schemas import CompiledSchema, SchemaFacts, build_schema
from llm_router_server.routing.validation.worker import CheckSchema, InvalidSchema, JudgeAnswer
from llm_router_server.types import Category

logger = logging.getLogger("llm_router")

INLINE_TEXT_CHARS = 8 * 1024
"""Free text judged on the loop up to this length (the refusal regex: ~3 KB per ms)."""
INLINE_ANSWER_CHARS = 4 * 1024
"""JSON answers judged on the loop up to this length, against a cheap schema only."""
INLINE_WORK = 20_000
"""Most (schema nodes) x (answer characters) judged on the loop: about 2 ms at worst."""
INLINE_SCHEMA_NODES = 2_000
"""Largest cheap schema whose validator the loop keeps (building one costs about 1 ms
per 1,000 nodes; a larger schema leaves too little of ``INLINE_WORK`` to be worth it)."""


@dataclass(frozen=True)
class CheckedSchema:
    """A caller's schema as the chain holds it once a worker has checked it."""

    text: str
    facts: SchemaFacts
    provider_schema: Mapping[str, Any]
    """The schema as an object, for providers' structured output."""
    local: CompiledSchema | None
    """The validator on the event loop's side, for a cheap schema; None: workers only."""

    @property
    def key(self) -> int:
        return hash(self.text)


class Validation:
    """Checks schemas and judges answers without holding the event loop."""

    def __init__(self, policy: ValidationPolicy, pool: WorkerPool | None = None) -> None:
        self.policy = policy
        cache_bytes = int(policy.schema_cache_mb * 1024 * 1024)
        self.pool = pool if pool is not None else WorkerPool.shared(policy.workers, cache_bytes)
        self.schemas: ByteBoundedCache[str, CheckedSchema | str] = ByteBoundedCache(cache_bytes)
        self._checking: dict[str, asyncio.Task[CheckedSchema | str]] = {}

    def start(self) -> None:
        """Start the workers in the background, so the first schema waits for none."""
        self.pool.start(self.pool.size)

    async def check_schema(self, text: str) -> CheckedSchema:
        """The checked schema for ``text``; raises InvalidRequestError saying what is wrong."""
        found = self.schemas.get(text)
        if found is None:
            loop = asyncio.get_running_loop()
            task = self._checking.get(text)
            if task is None or task.get_loop() is not loop:
                # One check per distinct text, however many calls bring it at once.
                task = self._checking[text] = loop.create_task(self._check(text))
                task.add_done_callback(lambda t: self._checking.pop(text, None))
            found = await asyncio.shield(task)
        if isinstance(found, str):
            raise InvalidRequestError(found)
        return found

    async def _check(self, text: str) -> CheckedSchema | str:
        budget = self.policy.schema_budget_ms / 1000
        try:
            result = await self.pool.run(CheckSchema(text), budget, key=hash(text))
        except BudgetExceededError:
            found: CheckedSchema | str = (
                f"schema check took longer than {self.policy.schema_budget_ms:.0f} ms "
                "(validation.schema_budget_ms): simplify the schema"
            )
        except WorkerFailedError as exc:
            return f"schema could not be checked: {exc}"  # not cached: may be transient
        else:
            if isinstance(result, InvalidSchema):
                found = result.message
            else:
                found = self._checked(text, result)
        self.schemas.put(text, found, schema_cost(text))
        return found

    @staticmethod
    def _checked(text: str, facts: SchemaFacts) -> CheckedSchema:
        local = None
        if facts.cheap and facts.nodes <= INLINE_SCHEMA_NODES:
            local = build_schema(text, facts)
        if local is not None:
            return CheckedSchema(text, facts, local.provider_schema, local)
        document = loads(text)
        provider = {} if document is True else {"not": {}} if document is False else document
        return CheckedSchema(text, facts, provider, None)

    def inline(self, text: str, schema: CheckedSchema | None) -> bool:
        """Whether judging ``text`` on the event loop is provably cheap."""
        if schema is None:
            return len(text) <= INLINE_TEXT_CHARS
        return (
            schema.local is not None
            and len(text) <= INLINE_ANSWER_CHARS
            and schema.facts.nodes * len(text) <= INLINE_WORK
        )

    async def judge(
        self,
        text: str,
        schema: CheckedSchema | None,
        refusals: RefusalDetector,
        *,
        wait: float | None = None,
    ) -> Verdict:
        """Judge one answer; ``wait``: seconds the caller can wait (its deadline)."""
        if self.inline(text, schema):
            return judge(text, None if schema is None else schema.local, refusals)
        task = JudgeAnswer(text, None if schema is None else schema.text, refusals.patterns)
        budget = self.policy.answer_budget_ms / 1000
        key, prepare = None, None
        if schema is not None:  # a worker that has not seen the schema checks it first
            key, prepare = (
                schema.key,
                (CheckSchema(schema.text), self.policy.schema_budget_ms / 1000),
            )
        try:
            async with asyncio.timeout(wait):
                result = await self.pool.run(task, budget, key=key, prepare=prepare)
        except TimeoutError:
            why = "the caller's deadline ran out while the answer was being judged"
            return Verdict(Category.VALIDATION_TIMEOUT, why)
        except BudgetExceededError:
            why = (
                f"judging the answer took longer than {self.policy.answer_budget_ms:.0f} ms "
                "(validation.answer_budget_ms)"
            )
            return Verdict(Category.VALIDATION_TIMEOUT, why)
        except WorkerFailedError as exc:
            return Verdict(Category.VALIDATION_TIMEOUT, f"the answer could not be judged: {exc}")
        if isinstance(result, InvalidSchema):
            reason = f"schema mismatch at $: the schema could not be applied: {result.message}"
            return Verdict(Category.SCHEMA_MISMATCH, reason[:500])
        verdict: Verdict = result
        if schema is None and verdict.accepted:
            verdict = replace(verdict, value=text)
        return verdict
