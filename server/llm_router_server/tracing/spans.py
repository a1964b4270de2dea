"""The spans of a Route call: attribute names, the attempt spans, the call's attributes.

``AttemptTracer`` is the chain's ``CallObserver`` (``routing/observer.py``): it opens
one client span per attempt under the current span (the Route span the interceptor
made current), named ``chat <model>`` as the OpenTelemetry GenAI conventions name an
inference span, and hands the chain the span's W3C ``traceparent`` for the provider
request. At the call's end it puts the router's own attributes on the Route span.

Attributes (GenAI semantic conventions, then the router's own under ``llm_router.``):

=====================================  ===================================================
``gen_ai.operation.name``              ``chat``
``gen_ai.provider.name``               ``ollama``, ``anthropic``, ``openai``, ...
``gen_ai.request.model``               the model name the upstream knows
``gen_ai.response.model``              the model name the answer reported
``gen_ai.usage.input_tokens``,         tokens the provider reported
``gen_ai.usage.output_tokens``
``server.address``, ``server.port``    the upstream API
``error.type``                         the reason category (``timeout``, ...) when the
                                       attempt was not accepted
``llm_router.attempt.outcome``         ``success``, ``rejected``, ``invalid``, ``skipped``
``llm_router.attempt.reason_category`` the proto's reason category, lower case
``llm_router.attempt.index``           0 for the chain's first attempt, ...
``llm_router.attempt.repair``          0 for a model's first answer, n for its n-th repair
``llm_router.attempt.cost_usd``        what the attempt cost in USD; absent when unknown
``llm_router.model``                   the configured model string
``llm_router.locality``                ``local`` or ``cloud``
``llm_router.chain``                   the chain (on both spans)
``llm_router.status``                  how the call ended (Route span): ``ok``, ...
``llm_router.model_used``              the answering model or ``none`` (Route span)
``llm_router.context``                 the caller's label, cut to 256 characters
``llm_router.attempts``                how many attempts the call made (Route span)
``llm_router.cost_usd``                the call's cost in USD (Route span); absent when
                                       unknown
``llm_router.cost_avoided_usd``        the cost avoided in USD (Route span); absent when
                                       unknown or not answered (docs/economics.md)
=====================================  ===================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llm_router_server.pricing.price import call_cost
from llm_router_server.providers.identity import ModelIdentity, identify
from llm_router_server.types import Attempt, ChainSpec, ModelSpec, Outcome, RouteEvent

OPERATION = "chat"
MAX_CONTEXT = 256
"""Longest caller context label put on a span (it is the caller's text)."""

PROPAGATOR = TraceContextTextMapPropagator()
"""W3C trace context (``traceparent``, ``tracestate``): in from gRPC metadata, out to
providers."""


@dataclass
class AttemptSpan:
    """One attempt's span (the chain's ``AttemptWatch``)."""

    span: trace.Span
    headers: Mapping[str, str] = field(default_factory=dict)

    def end(self, attempt: Attempt) -> None:
        span = self.span
        if span.is_recording():
            attributes: dict[str, str | int | float] = {
                "llm_router.attempt.outcome": attempt.outcome.value,
                "llm_router.attempt.reason_category": attempt.category.value,
                "llm_router.attempt.repair": attempt.repair,
            }
            if attempt.cost_usd is not None:
                attributes["llm_router.attempt.cost_usd"] = attempt.cost_usd
            if attempt.response_model:
                attributes["gen_ai.response.model"] = attempt.response_model
            if attempt.usage is not None:
                attributes["gen_ai.usage.input_tokens"] = attempt.usage.prompt_tokens
                attributes["gen_ai.usage.output_tokens"] = attempt.usage.completion_tokens
            if attempt.outcome is not Outcome.SUCCESS:
                attributes["error.type"] = attempt.category.value
                if attempt.outcome is not Outcome.SKIPPED:
                    span.set_status(Status(StatusCode.ERROR, attempt.reason))
            span.set_attributes(attributes)
        span.end()


class AttemptTracer:
    """The chain's observer: a span per attempt, the call's attributes on the Route span."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self._identities: dict[tuple[str, str | None], ModelIdentity] = {}

    def identity(self, spec: ModelSpec) -> ModelIdentity:
        key = (spec.model, spec.api_base)
        found = self._identities.get(key)
        if found is None:
            found = self._identities[key] = identify(spec)
        return found

    def attempt(self, spec: ModelSpec, chain: ChainSpec, index: int) -> AttemptSpan:
        who = self.identity(spec)
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": who.provider,
            "gen_ai.request.model": who.name,
            "llm_router.model": spec.model,
            "llm_router.locality": who.locality,
            "llm_router.chain": chain.name,
            "llm_router.attempt.index": index,
        }
        if who.address:
            attributes["server.address"] = who.address
        if who.port:
            attributes["server.port"] = who.port
        span = self.tracer.start_span(
            f"{OPERATION} {who.name}", kind=SpanKind.CLIENT, attributes=attributes
        )
        headers: dict[str, str] = {}
        if span.get_span_context().is_valid:
            PROPAGATOR.inject(headers, context=set_span_in_context(span))
        return AttemptSpan(span, headers)

    def finished(self, event: RouteEvent) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, str | int | float] = {
            "llm_router.chain": event.chain,
            "llm_router.status": event.status.value,
            "llm_router.model_used": event.model_used,
            "llm_router.context": event.context[:MAX_CONTEXT],
            "llm_router.attempts": len(event.attempts),
        }
        cost = call_cost(event.attempts)
        if cost is not None:
            attributes["llm_router.cost_usd"] = cost
        if event.cost_avoided_usd is not None:
            attributes["llm_router.cost_avoided_usd"] = event.cost_avoided_usd
        span.set_attributes(attributes)
