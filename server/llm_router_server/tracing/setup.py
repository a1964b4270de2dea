"""``Tracing``: one server's OpenTelemetry tracer, its exporter, interceptor and observer.

Built by the app only when tracing is on; it is the one module that picks the SDK's
pieces: a ``TracerProvider`` of this server's own (the process-wide default provider
is left alone, so several servers in one process keep their spans apart), a
parent-based ratio sampler, a batch span processor, and the OTLP/HTTP exporter unless
a test hands in another exporter. Log lines get the current trace id from here.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from llm_router_server.config.model import TracingConfig
from llm_router_server.tracing.interceptor import TracingInterceptor
from llm_router_server.tracing.spans import AttemptTracer

INSTRUMENTATION = "llm_router"


class Tracing:
    """The tracer of one server and the two places it hooks in."""

    def __init__(
        self, config: TracingConfig, *, replica_id: str = "", exporter: SpanExporter | None = None
    ) -> None:
        attributes = {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or config.service_name}
        if replica_id:
            attributes[SERVICE_INSTANCE_ID] = replica_id
        self.provider = TracerProvider(
            resource=Resource.create(attributes),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        )
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=config.endpoint or None)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer(INSTRUMENTATION)
        self.interceptor = TracingInterceptor(self.tracer)
        """Opens the Route span (the gRPC server's first interceptor after counting)."""
        self.observer = AttemptTracer(self.tracer)
        """Opens the attempt spans (the chain's observer)."""

    def flush(self, timeout_millis: int = 5000) -> bool:
        """Export what is pending now; True when it all went."""
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Export what is pending and stop the exporter (blocking: run it in a thread)."""
        self.provider.shutdown()


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace id, span id)`` in hex of the current span, None outside any (for logs)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
