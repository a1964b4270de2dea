"""The fallback chain: try each model in order, return the first valid answer.

Plain asyncio over the dataclasses in ``types.py``. It imports neither grpc
nor litellm nor redis: the provider and the metrics bus come in through their
seams (``providers/base.py``, ``metrics/``). Requests are checked against the
limits first (``limits.py``); an answer longer than ``limits.max_answer_chars`` is
rejected unread (so every reply fits a default client), the others are judged by
``judging.py``; what a provider error means (its category) is carried by its class
(``errors.py``).

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
from collections.abc import Mapping
from dataclasses import replace

from llm_router_server.breaker.breaker import CircuitBreaker
from llm_router_server.config.model import Limits, ValidationPolicy
from llm_router_server.errors import (
    AllModelsFailedError,
    ChainFailedError,
    DeadlineExceededError,
    ProviderError,
    RefusedError,
    UnknownChainError,
    timeout_error,
)
from llm_router_server.metrics.bus import MetricsBus
from llm_router_server.metrics.counters import ModelCounters
from llm_router_server.providers.base import Provider
from llm_router_server.routing.call import Answer, Call, ends_call, ms, rejected, skipped
from llm_router_server.routing.hedging import staggered
from llm_router_server.routing.judging import RefusalDetector
from llm_router_server.routing.limiter import ConcurrencyLimiter
from llm_router_server.routing.limits import check_context, check_messages, check_schema_text
from llm_router_server.routing.observer import CallObserver
from llm_router_server.routing.validation.offload import CheckedSchema, Validation
from llm_router_server.safe_text import echo
from llm_router_server.types import (
    Attempt,
    Category,
    ChainSpec,
    CompletionRequest,
    Deadline,
    ModelSpec,
    Outcome,
    RouteEvent,
    RouteRequest,
    RouteResult,
    RouteStatus,
)

logger = logging.getLogger("llm_router")

_INVALID = frozenset({Category.INVALID_JSON, Category.SCHEMA_MISMATCH, Category.VALIDATION_TIMEOUT})
_DEFAULT_LIMITS = Limits()
_NO_DEADLINE = Deadline()


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
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.limiter = ConcurrencyLimiter()
        self.observer = observer
        """Watches each attempt and call (tracing); None: nobody (``routing/observer.py``)."""
        self.validation = validation if validation is not None else Validation(ValidationPolicy())

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
            latency_ms = ms(time.monotonic() - start)
            if won is not None and won.attempt.outcome is Outcome.SUCCESS:
                model_used = won.attempt.model
                status = RouteStatus.OK
                return RouteResult(
                    content=won.value,
                    raw_text=won.raw_text,
                    model_used=model_used,
                    attempts=attempts,
                    latency_ms=latency_ms,
                    chain=chain.name,
                )
            status, error = _failure(chain, won, attempts, deadline, latency_ms)
            raise error
        finally:
            self._finish(request, chain.name, status, model_used, list(call.recorded()), start)

    async def _step(self, call: Call, spec: ModelSpec, *, forced: bool = False) -> Answer:
        """One model's turn: admission (deadline, breaker, concurrency), the call, the verdict.

        The attempt is recorded in ``call`` in start order, also when the step is
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
        logger.debug("%sattempt: %s (timeout %.3gs)", call.tag, spec.model, min(spec.timeout, left))
        started = time.monotonic()
        try:
            attempt, value, raw_text, error = await self._attempt(
                spec, call.request, call.schema, left, call.headers(slot), call.deadline
            )
        except asyncio.CancelledError:
            why = call.cancel_reason if call.winner is None else "another model answered first"
            call.put(slot, rejected(spec, Category.CANCELLED, why, started))
            raise
        finally:
            self.limiter.release(spec)
        answer = call.put(slot, attempt, value, raw_text)
        attempt = answer.attempt  # its reason bounded and redacted
        if attempt.category is Category.SAFETY_REFUSAL:
            answer.stop = call.chain.refusal_policy == "stop"
        if ends_call(answer) and call.winner is None:
            call.winner = answer
        await self.breaker.record(spec, error, healthy=error is None)
        if attempt.outcome is Outcome.SUCCESS:
            logger.info("%s%s -> success [%.0f ms]", call.tag, spec.model, attempt.latency_ms)
        else:
            logger.warning(
                "%s%s -> %s (%s) [%.0f ms]",
                call.tag,
                spec.model,
                attempt.outcome.value,
                attempt.reason,
                attempt.latency_ms,
            )
        return answer

    @staticmethod
    def _all_open(call: Call) -> bool:
        attempts = call.recorded()
        return bool(attempts) and all(a.category is Category.CIRCUIT_OPEN for a in attempts)

    async def _attempt(
        self,
        spec: ModelSpec,
        request: RouteRequest,
        schema: CheckedSchema | None,
        left: float,
        headers: Mapping[str, str],
        deadline: Deadline,
    ) -> tuple[Attempt, object, str, ProviderError | None]:
        """Call one model and judge its answer: (attempt, parsed value, raw text, error)."""
        timeout = min(spec.timeout, left)
        call = CompletionRequest(
            messages=request.messages,
            schema=schema.provider_schema
            if schema is not None and spec.structured_output
            else None,
            timeout=timeout,
            headers=headers,
        )
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                completion = await self.provider.complete(spec, call)
        except TimeoutError:
            error = timeout_error(timeout, spec.timeout)
            return rejected(spec, error.category, str(error), started), None, "", error
        except ProviderError as exc:
            return rejected(spec, exc.category, str(exc), started), None, "", exc
        if len(completion.text) > self.limits.max_answer_chars:
            reason = (
                f"answer too large: {len(completion.text)} characters; the limit is "
                f"{self.limits.max_answer_chars} (limits.max_answer_chars)"
            )
            attempt = rejected(spec, Category.PROVIDER_ERROR, reason, started)
            return replace(attempt, usage=completion.usage), None, "", None
        wait = None if math.isinf(deadline.expires_at) else max(deadline.remaining(), 0.0)
        verdict = await self.validation.judge(completion.text, schema, self.refusals, wait=wait)
        if verdict.accepted:
            outcome = Outcome.SUCCESS
        elif verdict.category in _INVALID:
            outcome = Outcome.INVALID
        else:
            outcome = Outcome.REJECTED
        attempt = Attempt(
            model=spec.model,
            outcome=outcome,
            category=verdict.category,
            reason=verdict.reason,
            latency_ms=ms(time.monotonic() - started),
            usage=completion.usage,
            response_model=completion.model,
        )
        return attempt, verdict.value, completion.text, None

    def _finish(
        self,
        request: RouteRequest,
        chain: str,
        status: RouteStatus,
        model_used: str,
        attempts: list[Attempt],
        start: float,
    ) -> None:
        """Count the call and publish its event; runs on every exit, cancellation included."""
        self.counters.record_call(tuple(attempts))
        event = RouteEvent(
            timestamp=time.time(),
            status=status,
            chain=chain,
            context=request.context,
            model_used=model_used,
            latency_ms=ms(time.monotonic() - start),
            attempts=tuple(attempts),
            metrics_snapshot=self.counters.snapshot(),
        )
        if self.observer is not None:
            self.observer.finished(event)
        self.bus.publish(event)


def _failure(
    chain: ChainSpec,
    won: Answer | None,
    attempts: tuple[Attempt, ...],
    deadline: Deadline,
    latency_ms: float,
) -> tuple[RouteStatus, ChainFailedError]:
    """How a call without an answer ended: its status and the error that carries its attempts."""
    summary = "; ".join(f"{a.model}: {a.outcome.value}: {a.reason}" for a in attempts)
    kind: type[ChainFailedError]
    if won is not None:  # a safety refusal under refusal_policy = "stop"
        status, kind = RouteStatus.REFUSED, RefusedError
        message = (
            f"{won.attempt.model} refused for safety and chain {chain.name!r} has "
            f"refusal_policy 'stop': {won.attempt.reason}"
        )
    elif deadline.expired or any(a.category is Category.SKIPPED for a in attempts):
        status, kind = RouteStatus.DEADLINE_EXCEEDED, DeadlineExceededError
        message = f"deadline exceeded after {len(attempts)} attempt(s): {summary}"
    else:
        status, kind = RouteStatus.ALL_FAILED, AllModelsFailedError
        message = f"all {len(chain.models)} models of chain {chain.name!r} failed: {summary}"
    return status, kind(message, chain=chain.name, attempts=attempts, latency_ms=latency_ms)
