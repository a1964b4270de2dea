"""Turning tracing on and off: the configuration, the ``OTEL_*`` variables, the missing
extra, the cost of "off", and spans exported over OTLP/HTTP to a real receiver."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llm_router_server import config
from llm_router_server.app import App
from llm_router_server.config import Config, ServerConfig, TracingConfig
from llm_router_server.errors import ConfigError
from llm_router_server.types import ChainSpec
from tests.support.server import anthropic, ollama
from tests.support.upstream import FakeUpstream, HttpError
from tests.tracing.servers import TRACE_ID, TRACEPARENT


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_the_standard_otel_variables_turn_tracing_on_and_off(
    env: dict[str, str], enabled: bool
) -> None:
    assert config.parse({}, env).tracing.enabled is enabled


def test_otel_sdk_disabled_wins_over_the_file() -> None:
    data = {"tracing": {"enabled": True}}
    assert config.parse(data, {}).tracing.enabled
    assert not config.parse(data, {"OTEL_SDK_DISABLED": "true"}).tracing.enabled


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"endpoint": "collector:4318"}, "tracing.endpoint: expected an http:// or https:// URL"),
        ({"sample_ratio": 1.5}, "tracing.sample_ratio: must be between 0 and 1"),
        ({"service_name": ""}, "tracing.service_name: must not be empty"),
        ({"enabeld": True}, "unknown key(s): 'tracing.enabeld'"),
    ],
)
def test_bad_tracing_settings_stop_start_up(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.parse({"tracing": table}, {})


def test_a_bad_log_format_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"server\.log_format"):
        config.parse({"server": {"log_format": "xml"}}, {})
    with pytest.raises(ConfigError, match="LLM_ROUTER_LOG_FORMAT"):
        config.parse({}, {"LLM_ROUTER_LOG_FORMAT": "xml"})


def test_tracing_on_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llm_router_server.tracing.setup", None)
    chains = {"default": ChainSpec("default", ())}
    cfg = Config(chains=chains, tracing=TracingConfig(enabled=True))
    with pytest.raises(ConfigError, match=r"pip install 'llm-router\[tracing\]'"):
        App(cfg)


async def test_off_by_default_no_observer_no_interceptor_no_header(
    upstream: Any, serve: Any
) -> None:
    up: FakeUpstream = upstream()
    running = await serve([ollama(up)])

    await running.route()

    assert running.app.tracing is None
    assert running.app.router.observer is None
    (request,) = up.chat_requests()
    assert "traceparent" not in {k.lower() for k in request.headers}


class OTLPReceiver:
    """A wire-level OTLP/HTTP traces receiver on 127.0.0.1: decodes each export request."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.received = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self.export)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1/traces"

    async def export(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.requests.append(message)
        self.received.set()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def spans(self) -> dict[str, Any]:
        return {
            span.name: span
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        }

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_spans_reach_a_real_otlp_http_receiver(upstream: Any, traced: Any) -> None:
    receiver = OTLPReceiver()
    await receiver.start()
    try:
        up: FakeUpstream = upstream()
        up.on_path("/api/chat", HttpError(500))
        settings = TracingConfig(enabled=True, endpoint=receiver.url, service_name="router-test")
        server = await traced([ollama(up), anthropic(up)], tracing=settings, in_memory=False)

        await server.route(metadata=[("traceparent", TRACEPARENT)])
        assert server.app.tracing is not None
        assert await asyncio.to_thread(server.app.tracing.flush)
        await asyncio.wait_for(receiver.received.wait(), 10)
    finally:
        await receiver.stop()

    assert set(receiver.content_types) == {"application/x-protobuf"}
    spans = receiver.spans()
    assert set(spans) == {
        "llm_router.v1.Router/Route",
        "chat qwen2.5:7b",
        "chat claude-haiku-4-5-20251001",
    }
    route = spans["llm_router.v1.Router/Route"]
    assert route.trace_id.hex() == TRACE_ID
    local = spans["chat qwen2.5:7b"]
    assert local.parent_span_id == route.span_id
    attributes = {a.key: a.value for a in local.attributes}
    assert attributes["gen_ai.provider.name"].string_value == "ollama"
    assert attributes["error.type"].string_value == "provider_error"
    resource = {
        a.key: a.value.string_value
        for a in receiver.requests[0].resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "router-test"


async def test_tracing_on_through_the_environment_builds_the_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    cfg = config.parse(
        {"chains": {"default": {"models": [{"model": "ollama_chat/x"}]}}},
        dict(os.environ),
    )
    app = App(
        Config(server=ServerConfig(listen="127.0.0.1:0"), chains=cfg.chains, tracing=cfg.tracing)
    )
    try:
        assert app.tracing is not None
        assert app.router.observer is app.tracing.observer
    finally:
        await asyncio.to_thread(app.tracing.shutdown)
        await app.provider.aclose()
        await app.router.breaker.aclose()
