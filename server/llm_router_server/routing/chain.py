"""The fallback chain: try each model in order, return the first valid answer.

Plain asyncio over the dataclasses in ``types.py``. It imports neither grpc
nor litellm nor redis: the provider and the metrics bus come in through their
seams (``providers/base.py``, ``metrics/``). Requests are checked against the
limits first (``limits.py``); an answer longer than ``limits.max_answer_chars`` is
rejected unread (so every reply fits a default client), the others are judged off
the loop when costly (``validation/``); what a provider error means (its category) is
carried by its class (``errors.py``).

Before moving on: a model whose answer is not JSON or fails the schema is asked
again, with its answer and the validation error, up to its ``repair_attempts``
(``repair.py``); each repair is an attempt of its own (and, for the observer, a turn of
its own). Each question is asked and judged in ``ask.py``. Where the model's decoder
is known to drop some schema keywords, the first question says them in words
(``constraints.py``). Money: every attempt carries its cost, the result the
call's total and the cost avoided when a model without a price answered
(``pricing/``).

Resilience (each in its own module): a circuit breaker per model skips models
that keep failing (``breaker/``); a per-model concurrency limit skips a model
that is full (``limiter.py``); a chain with ``hedge_after_ms`` starts the next
model early when the current one is slow (``hedging.py``). When every model of
a chain was skipped as open, the least recently failed one is tried anyway
(``[breaker] when_all_open``). A provider's safety refusal ends the call when
the chain's ``refusal_policy`` is ``stop``.

Budget: one outer deadline (the caller's) wraps the loop; each attempt gets
``min(model.timeout, time left)``, and a model is skipped when less than
``min_attempt_seconds`` is left. A provider timeout is just another provider
error. When the caller cancels, the in-flight provider call is cancelled with
it, and the call's event is still published.

An optional observer (``observer.py``; tracing is one) is told of each attempt as it
starts and ends and of the call's end; without one the chain makes no observer call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace

from llm_router_server.breaker.breaker import CircuitBreaker
from llm_router_server.config.model import Limits, ValidationPolicy
from llm_router_server.errors import (
    UnknownChainError,
)
from llm_router_server.metrics.bus import MetricsBus
from llm_router_server.metrics.counters import ChainCounters, ModelCounters
from llm_router_server.pricing.book import PriceBook
from llm_router_server.pricing.price import Price, call_cost, cost_avoided, is_priced, usage_cost
from llm_router_server.providers.base import Provider
from llm_router_server.routing.ask import Asker, Question
from llm_router_server.routing.call import (
    Answer,
    Call,
    ends_call,
    failure,
    ms,
    rejected,
    skipped,
)
from llm_router_server.routing.constraints import constraint_note, with_note
from llm_router_server.routing.hedging import staggered
from llm_router_server.routing.judging import RefusalDetector
from llm_router_server.routing.limiter import ConcurrencyLimiter
from llm_router_server.routing.limits import check_context, check_messages, check_schema_text
from llm_router_server.routing.observer import CallObserver
from llm_router_server.routing.repair import repair_messages, repairable
from llm_router_server.routing.validation.offload import CheckedSchema, Validation
from llm_router_server.safe_text import echo
from llm_router_server.types import (
    Category,
    ChainSpec,
    Deadline,
    Message,
    ModelSpec,
    Outcome,
    RouteEvent,
    RouteRequest,
    RouteResult,
    RouteStatus,
)

logger = logging.getLogger("llm_router")

_DEFAULT_LIMITS = Limits()
_NO_DEADLINE = Deadline()


def _nothing_unenforced(spec: ModelSpec) -> Collection[str]:
    return ()


class Router:
    """Routes requests through named chains of models."""

    def __init__(
        self,
        chains: Mapping[str, ChainSpec],
        provider: Provider,
        bus: MetricsBus,
        *,
        default_chain: str = "default",
        refusal_patterns: tuple[str, ...],
        limits: Limits = _DEFAULT_LIMITS,
        min_attempt_seconds: float = 0.05,
        breaker: CircuitBreaker | None = None,
        prices: PriceBook | None = None,
        unenforced: Callable[[ModelSpec], Collection[str]] | None = None,
        observer: CallObserver | None = None,
        validation: Validation | None = None,
    ) -> None:
        if default_chain not in chains:
            raise ValueError(f"default chain {default_chain!r} is not among the chains")
        self.chains = dict(chains)
        self.provider = provider
        self.bus = bus
        self.default_chain = default_chain
        self.refusals = RefusalDetector(refusal_patterns)
        self.limits = limits
        self.min_attempt_seconds = min_attempt_seconds
        self.counters = ModelCounters()
        self.chain_counters = ChainCounters()
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.limiter = ConcurrencyLimiter()
        self.prices = prices if prices is not None else PriceBook()
        self._references: dict[str, Price | None] = {}
        """Per chain: the price of its first priced model (for the cost avoided)."""
        self.unenforced = unenforced if unenforced is not None else _nothing_unenforced
        self.observer = observer
        """Watches each attempt and call (tracing); None: nobody (``routing/observer.py``)."""
        self.validation = validation if validation is not None else Validation(ValidationPolicy())
        self.asker = Asker(
            provider, self.validation, self.refusals, self.prices, limits.max_answer_chars
        )

    async def check(self, request: RouteRequest) -> tuple[ChainSpec, CheckedSchema | None]:
        """Validate a request before any model is called; raise InvalidRequestError.

        A new schema is checked in a validation worker (``validation/offload.py``)."""
        check_messages(request.messages, self.limits)
        check_context(request.context, self.limits)
        has_schema = bool(request.schema.strip())
        if has_schema:
            check_schema_text(request.schema, self.limits)
        name = request.chain or self.default_chain
        chain = self.chains.get(name)
        if chain is None:
            raise UnknownChainError(
                f"unknown chain {echo(name)}; configured chains: " + ", ".join(sorted(self.chains))
            )
        if not has_schema:
            return chain, None
        return chain, await self.validation.check_schema(request.schema)

    async def route(self, request: RouteRequest, deadline: Deadline = _NO_DEADLINE) -> RouteResult:
        """Return the first valid answer of the request's chain.

        Raises InvalidRequestError before calling any model, AllModelsFailedError
        when every model is rejected, DeadlineExceededError when the deadline runs
        out first, RefusedError when a safety refusal ends the call (refusal_policy
        "stop").
        """
        chain, schema = await self.check(request)
        tag = f"[{request.context}] " if request.context else ""
        call = Call(request, chain, schema, deadline, tag, self.observer)
        start = time.monotonic()
        status = RouteStatus.CANCELLED
        model_used = "none"
        try:
            delay = chain.hedge_after_ms / 1000 if chain.hedge_after_ms > 0 else math.inf
            steps = [functools.partial(self._step, call, spec) for spec in chain.models]
            won = await staggered(steps, delay, ends_call)
            last_resort = self.breaker.policy.when_all_open == "try_one"
            if won is None and last_resort and self._all_open(call) and deadline.remaining() > 0:
                last = await self.breaker.least_recently_failed(chain.models)
                if last is not None:
                    logger.warning(
                        "%severy circuit of chain %r is open: trying %s as the last resort",
                        call.tag,
                        chain.name,
                        last.model,
                    )
                    answer = await self._step(call, last, forced=True)
                    won = answer if ends_call(answer) else None
            attempts = call.recorded()
            if won is not None and won.attempt.outcome is Outcome.SUCCESS:
                call.cost_avoided, call.local_answer = await self._money(chain, won)
                model_used = won.attempt.model
                status = RouteStatus.OK
                return RouteResult(
                    content=won.value,
                    raw_text=won.raw_text,
                    model_used=model_used,
                    attempts=attempts,
                    latency_ms=ms(time.monotonic() - start),
                    chain=chain.name,
                    cost_usd=call_cost(attempts),
                    cost_avoided_usd=call.cost_avoided,
                )
            latency_ms = ms(time.monotonic() - start)
            status, error = failure(chain, won, attempts, deadline, latency_ms)
            raise error
        finally:
            self._finish(call, status, model_used, start)

    async def _step(self, call: Call, spec: ModelSpec, *, forced: bool = False) -> Answer:
        """One model's turn: admission (deadline, breaker, concurrency), the question, the
        verdict, and the repairs of an invalid answer while the model's budget lasts.

        Each attempt is recorded in ``call`` in start order, also when the step is
        cancelled (by the caller, or because a hedged model answered first).
        """
        slot = call.reserve(spec)
        left = call.deadline.remaining()
        if left < self.min_attempt_seconds:
            why = f"deadline: {max(left, 0) * 1000:.0f} ms left, not started"
            return call.put(slot, skipped(spec, why))
        if not forced:
            admission = await self.breaker.admit(spec, lease=min(spec.timeout, left) + 1)
            if not admission.allowed:
                return call.put(slot, skipped(spec, admission.reason, Category.CIRCUIT_OPEN))
        if not self.limiter.try_acquire(spec):
            why = f"saturated: {spec.max_concurrency} call(s) already in flight"
            return call.put(slot, skipped(spec, why, Category.SATURATED))
        try:
            question = Question(spec, self._messages(call, spec), call.schema)
            answer = await self._ask(call, slot, question, left)
            while (
                question.repair < spec.repair_attempts
                and repairable(answer.attempt)
                and not answer.truncated
                and call.winner is None
                and (left := call.deadline.remaining()) >= self.min_attempt_seconds
            ):
                messages = repair_messages(
                    question.messages, answer.raw_text, answer.attempt.reason
                )
                question = replace(question, messages=messages, repair=question.repair + 1)
                answer = await self._ask(call, call.reserve(spec), question, left)
        finally:
            self.limiter.release(spec)
        return answer

    async def _ask(self, call: Call, slot: int, question: Question, left: float) -> Answer:
        """One attempt of a step: ask, record, tell the breaker, log."""
        spec = question.spec
        logger.debug(
            "%sattempt: %s%s (timeout %.3gs)",
            call.tag,
            spec.model,
            f" repair {question.repair}" if question.repair else "",
            min(spec.timeout, left),
        )
        started = time.monotonic()
        try:
            asked = await self.asker.ask(question, left, call.headers(slot), call.deadline)
        except asyncio.CancelledError:
            why = call.cancel_reason if call.winner is None else "another model answered first"
            cost = usage_cost(self.prices.known(spec), None)
            call.put(slot, rejected(spec, Category.CANCELLED, why, started, question.repair, cost))
            raise
        attempt = asked.attempt
        answer = call.put(slot, attempt, asked.value, asked.raw_text)
        attempt = answer.attempt  # its reason bounded and redacted
        answer.spec = spec
        answer.truncated = asked.truncated
        if attempt.category is Category.SAFETY_REFUSAL:
            answer.stop = call.chain.refusal_policy == "stop"
        if ends_call(answer) and call.winner is None:
            call.winner = answer
        await self.breaker.record(spec, asked.error, healthy=asked.error is None)
        repair = f" (repair {attempt.repair})" if attempt.repair else ""
        if attempt.outcome is Outcome.SUCCESS:
            logger.info(
                "%s%s -> success%s [%.0f ms]", call.tag, spec.model, repair, attempt.latency_ms
            )
        else:
            logger.warning(
                "%s%s -> %s%s (%s) [%.0f ms]",
                call.tag,
                spec.model,
                attempt.outcome.value,
                repair,
                attempt.reason,
                attempt.latency_ms,
            )
        return answer

    def _messages(self, call: Call, spec: ModelSpec) -> tuple[Message, ...]:
        """The conversation for a model's first answer: the request's, plus the constraint
        note when its decoder is known to drop some of the schema's keywords."""
        messages = call.request.messages
        schema = call.schema
        if schema is None or not (spec.structured_output and spec.constraint_notes):
            return messages
        keywords = self.unenforced(spec)
        if not keywords:
            return messages
        return with_note(messages, constraint_note(schema.provider_schema, keywords))

    @staticmethod
    def _all_open(call: Call) -> bool:
        attempts = call.recorded()
        return bool(attempts) and all(a.category is Category.CIRCUIT_OPEN for a in attempts)

    async def _money(self, chain: ChainSpec, won: Answer) -> tuple[float | None, bool]:
        """The cost avoided by an accepted answer, and whether it came from a model without
        a price (a local model)."""
        price = await self.prices.price(won.spec) if won.spec is not None else None
        if is_priced(price):
            return 0.0, False
        if chain.name not in self._references:  # prices do not change once read
            self._references[chain.name] = await self.prices.reference(chain.models)
        return cost_avoided(won.attempt, price, self._references[chain.name]), True

    def _finish(self, call: Call, status: RouteStatus, model_used: str, start: float) -> None:
        """Count the call and publish its event; runs on every exit, cancellation included."""
        attempts = call.recorded()
        self.counters.record_call(attempts, call.cost_avoided)
        event = RouteEvent(
            timestamp=time.time(),
            status=status,
            chain=call.chain.name,
            context=call.request.context,
            model_used=model_used,
            latency_ms=ms(time.monotonic() - start),
            attempts=attempts,
            metrics_snapshot=self.counters.snapshot(),
            cost_avoided_usd=call.cost_avoided,
            local_answer=call.local_answer,
        )
        self.chain_counters.record_call(event)
        if self.observer is not None:
            self.observer.finished(event)
        self.bus.publish(event)
