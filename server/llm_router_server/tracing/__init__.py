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

The settings are ``config.TracingConfig`` (``[tracing]``); ``setup.py`` builds the
tracer when tracing is on. This package's ``__init__`` imports nothing.
"""
