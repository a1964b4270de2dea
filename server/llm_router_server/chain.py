"""The fallback chain: try each model in order, return the first valid answer.

Plain asyncio over the dataclasses in ``types.py``. It imports neither grpc
nor litellm nor redis: the provider and the metrics bus come in through their
seams (``providers/base.py``, ``metrics.py``).

Budget: one outer deadline (the caller's) wraps the loop; each attempt gets
``min(model.timeout, time left)``, and a model is skipped when less than
``min_attempt_seconds`` is left. A provider timeout is just another provider
error. When the caller cancels, the in-flight provider call is cancelled with
it, and the call's event is still published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from llm_router_server.answers import (
    Limits,
    RefusalDetector,
    Schema,
    check_messages,
    check_schema_text,
    judge,
)
from llm_router_server.errors import (
    AllModelsFailedError,
    DeadlineExceededError,
    ProviderConnectionError,
    ProviderError,
    ProviderRefusalError,
    ProviderTimeoutError,
    UnknownChainError,
)
from llm_router_server.metrics import MetricsBus, ModelCounters
from llm_router_server.providers.base import Provider
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

_PROVIDER_CATEGORIES: tuple[tuple[type[ProviderError], Category], ...] = (
    (ProviderTimeoutError, Category.TIMEOUT),
    (ProviderRefusalError, Category.REFUSAL),
    (ProviderConnectionError, Category.PROVIDER_ERROR),
    (ProviderError, Category.PROVIDER_ERROR),
)


_DEFAULT_LIMITS = Limits()
_NO_DEADLINE = Deadline()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


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

    def check(self, request: RouteRequest) -> tuple[ChainSpec, Schema | None]:
        """Validate a request before any model is called; raise InvalidRequestError."""
        check_messages(request.messages, self.limits)
        schema = check_schema_text(request.schema, self.limits)
        name = request.chain or self.default_chain
        chain = self.chains.get(name)
        if chain is None:
            raise UnknownChainError(
                f"unknown chain {name!r}; configured chains: " + ", ".join(sorted(self.chains))
            )
        return chain, schema

    async def route(self, request: RouteRequest, deadline: Deadline = _NO_DEADLINE) -> RouteResult:
        """Return the first valid answer of the request's chain.

        Raises InvalidRequestError before calling any model, AllModelsFailedError
        when every model is rejected, DeadlineExceededError when the deadline runs
        out first.
        """
        chain, schema = self.check(request)
        tag = f"[{request.context}] " if request.context else ""
        start = time.monotonic()
        attempts: list[Attempt] = []
        status = RouteStatus.CANCELLED
        model_used = "none"
        try:
            for index, spec in enumerate(chain.models):
                left = deadline.remaining()
                if left < self.min_attempt_seconds:
                    attempts.extend(
                        _skipped(m, f"deadline: {max(left, 0) * 1000:.0f} ms left, not started")
                        for m in chain.models[index:]
                    )
                    break
                logger.debug(  # DEBUG: the outcome line below says it at INFO (bench/)
                    "%sattempt %d/%d: %s (timeout %.3gs)",
                    tag,
                    index + 1,
                    len(chain.models),
                    spec.model,
                    min(spec.timeout, left),
                )
                started = time.monotonic()
                try:
                    attempt, value, raw_text = await self._attempt(spec, request, schema, left)
                except asyncio.CancelledError:
                    attempts.append(
                        _rejected(spec, Category.CANCELLED, "cancelled by the caller", started)
                    )
                    raise
                attempts.append(attempt)
                if attempt.outcome is Outcome.SUCCESS:
                    model_used = spec.model
                    status = RouteStatus.OK
                    logger.info("%s%s -> success [%.0f ms]", tag, spec.model, attempt.latency_ms)
                    return RouteResult(
                        content=value,
                        raw_text=raw_text,
                        model_used=spec.model,
                        attempts=tuple(attempts),
                        latency_ms=_ms(time.monotonic() - start),
                        chain=chain.name,
                    )
                logger.warning(
                    "%s%s -> %s (%s) [%.0f ms]",
                    tag,
                    spec.model,
                    attempt.outcome.value,
                    attempt.reason,
                    attempt.latency_ms,
                )
            latency_ms = _ms(time.monotonic() - start)
            summary = "; ".join(f"{a.model}: {a.outcome.value}: {a.reason}" for a in attempts)
            if deadline.expired or any(a.outcome is Outcome.SKIPPED for a in attempts):
                status = RouteStatus.DEADLINE_EXCEEDED
                raise DeadlineExceededError(
                    f"deadline exceeded after {len(attempts)} attempt(s): {summary}",
                    chain=chain.name,
                    attempts=attempts,
                    latency_ms=latency_ms,
                )
            status = RouteStatus.ALL_FAILED
            raise AllModelsFailedError(
                f"all {len(chain.models)} models of chain {chain.name!r} failed: {summary}",
                chain=chain.name,
                attempts=attempts,
                latency_ms=latency_ms,
            )
        finally:
            self._finish(request, chain.name, status, model_used, attempts, start)

    async def _attempt(
        self, spec: ModelSpec, request: RouteRequest, schema: Schema | None, left: float
    ) -> tuple[Attempt, object, str]:
        """Call one model and judge its answer. Returns (attempt, parsed value, raw text)."""
        timeout = min(spec.timeout, left)
        call = CompletionRequest(
            messages=request.messages,
            schema=schema.document if schema is not None and spec.structured_output else None,
            timeout=timeout,
        )
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                completion = await self.provider.complete(spec, call)
        except TimeoutError:
            why = "caller's deadline" if timeout < spec.timeout else "timeout"
            return (
                _rejected(
                    spec, Category.TIMEOUT, f"no answer within {timeout:.3g}s ({why})", started
                ),
                None,
                "",
            )
        except ProviderError as exc:
            category = next(c for t, c in _PROVIDER_CATEGORIES if isinstance(exc, t))
            return _rejected(spec, category, str(exc), started), None, ""
        verdict = judge(completion.text, schema, self.refusals)
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
            reason=verdict.reason,
            latency_ms=_ms(time.monotonic() - started),
            usage=completion.usage,
        )
        return attempt, verdict.value, completion.text

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
        self.bus.publish(
            RouteEvent(
                timestamp=time.time(),
                status=status,
                chain=chain,
                context=request.context,
                model_used=model_used,
                latency_ms=_ms(time.monotonic() - start),
                attempts=tuple(attempts),
                metrics_snapshot=self.counters.snapshot(),
            )
        )


def _rejected(spec: ModelSpec, category: Category, reason: str, started: float) -> Attempt:
    return Attempt(
        model=spec.model,
        outcome=Outcome.REJECTED,
        category=category,
        reason=reason,
        latency_ms=_ms(time.monotonic() - started),
    )


def _skipped(spec: ModelSpec, reason: str) -> Attempt:
    return Attempt(
        model=spec.model,
        outcome=Outcome.SKIPPED,
        category=Category.SKIPPED,
        reason=reason,
        latency_ms=0.0,
    )
