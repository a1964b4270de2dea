"""OpenTelemetry traces of Route calls: optional, off by default.

Install the extra (``pip install "llm-router[tracing]"``: the OpenTelemetry SDK and its
OTLP/HTTP exporter) and turn it on with ``[tracing] enabled = true`` or the standard
``OTEL_*`` variables (see ``docs/configuration.md``). Then each Route call makes:

- a server span ``llm_router.v1.Router/Route`` that continues the caller's W3C trace
  context (gRPC metadata ``traceparent``/``tracestate``), opened by a gRPC server
  interceptor (``interceptor.py``), with the router's call attributes;
- one client span per attempt, ``chat <model>``, with the OpenTelemetry GenAI attributes
  (``gen_ai.*``, ``server.address``, ``error.type``) and the attempt's outcome and reason
  category (``spans.py``), whose context goes on to the provider as ``traceparent``.

Spans are exported with OTLP over HTTP/protobuf in the background (a batch processor);
log lines carry the trace id (``logs.py``). Off, none of this is imported: the chain has
no observer and the server no tracing interceptor.

This module holds only what the configuration needs (it imports no OpenTelemetry);
``setup.py`` builds the tracer when tracing is on.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SERVICE_NAME = "llm-router"


@dataclass(frozen=True)
class TracingConfig:
    """Where and how traces are exported (``[tracing]``)."""

    enabled: bool = False
    """Export traces. Also on when ``OTEL_TRACES_EXPORTER=otlp`` or an OTLP endpoint
    variable is set; off whatever the file says with ``OTEL_SDK_DISABLED=true`` or
    ``OTEL_TRACES_EXPORTER=none``."""
    endpoint: str = ""
    """OTLP/HTTP traces URL (``http://collector:4318/v1/traces``); empty: the exporter's
    own default (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    else ``http://localhost:4318/v1/traces``)."""
    service_name: str = DEFAULT_SERVICE_NAME
    """``service.name`` of the spans; ``OTEL_SERVICE_NAME`` wins when set."""
    sample_ratio: float = 1.0
    """Share of new traces recorded (0..1); a caller's sampled flag is followed."""
