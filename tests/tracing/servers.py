"""A traced server for the tracing tests: a real App on port 0 whose spans go to an
in-memory exporter (or a real OTLP endpoint), and its gRPC channel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server.app import App
from llm_router_server.config import Config, ServerConfig, TracingConfig
from llm_router_server.tracing.interceptor import SPAN_NAME
from llm_router_server.tracing.setup import Tracing
from llm_router_server.types import ChainSpec, ModelSpec
from tests.support.waiting import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@dataclass
class Traced:
    app: App
    channel: grpc.aio.Channel
    stub: router_pb2_grpc.RouterStub
    exporter: InMemorySpanExporter | None
    spans_seen: list[ReadableSpan] = field(default_factory=list)

    async def route(
        self, text: str = "What now?", *, metadata: Sequence[tuple[str, str]] = (), **fields: str
    ) -> router_pb2.RouteResponse:
        request = router_pb2.RouteRequest(
            messages=[router_pb2.Message(role="user", content=text)], **fields
        )
        reply: router_pb2.RouteResponse = await self.stub.Route(
            request, timeout=30, metadata=tuple(metadata)
        )
        return reply

    def spans(self) -> list[ReadableSpan]:
        """Every span finished so far (flushed from the batch processor)."""
        assert self.app.tracing is not None and self.exporter is not None
        assert self.app.tracing.flush()
        return list(self.exporter.get_finished_spans())

    async def settled_spans(self) -> list[ReadableSpan]:
        """``spans()`` once the Route span has ended: a call that ends in an error status
        (``context.abort``) sends it to the client a moment before the span around it ends."""
        await eventually(lambda: any(s.name == SPAN_NAME for s in self.spans()))
        return self.spans()


@pytest.fixture
async def traced(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[object]:
    """``await traced(models, tracing=TracingConfig(...), exporter=True, **config)``."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789abcdef")
    for name in ("OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    started: list[Traced] = []

    async def start(
        models: Sequence[ModelSpec],
        *,
        tracing: TracingConfig | None = None,
        in_memory: bool = True,
        hedge_after_ms: float = 0.0,
    ) -> Traced:
        settings = tracing or TracingConfig(enabled=True)
        chains = {"default": ChainSpec("default", tuple(models), hedge_after_ms=hedge_after_ms)}
        config = Config(server=ServerConfig(listen="127.0.0.1:0"), chains=chains, tracing=settings)
        exporter = InMemorySpanExporter() if in_memory else None
        tracer = Tracing(settings, replica_id="replica-a", exporter=exporter) if in_memory else None
        app = App(config, tracing=tracer)
        port = await app.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        running = Traced(app, channel, router_pb2_grpc.RouterStub(channel), exporter)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.channel.close()
        await running.app.stop(0)
