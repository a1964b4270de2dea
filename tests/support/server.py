"""pytest fixtures that run the real gRPC server in-process on port 0.

``serve(models, ...)`` starts an ``App`` (real grpc.aio server, real
LiteLLMProvider unless one is given) whose default chain is ``models``, and
returns a ``Running`` with a stub, a typed client and the app itself.
``ollama``, ``anthropic`` and ``openai`` build the models, each served by a
``FakeUpstream`` at its wire protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llm_router import AsyncRouterClient
from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server.app import App
from llm_router_server.config import Config, ServerConfig
from llm_router_server.providers.base import Provider
from llm_router_server.types import ChainSpec, ModelSpec
from tests.support.upstream import FakeUpstream

SCHEMA = {
    "type": "object",
    "required": ["action"],
    "properties": {"action": {"enum": ["restart", "escalate", "wait"]}},
}
"""A caller's JSON Schema: an object whose ``action`` is one of three words."""

HI = router_pb2.RouteRequest(messages=[router_pb2.Message(role="user", content="hi")])
"""The smallest valid Route request."""


def ollama(up: FakeUpstream, timeout: float = 5.0, **kw: Any) -> ModelSpec:
    """A local model served by the fake at the Ollama /api/chat wire protocol."""
    return ModelSpec("ollama_chat/qwen2.5:7b", timeout=timeout, api_base=up.url, **kw)


def anthropic(up: FakeUpstream, timeout: float = 5.0, **kw: Any) -> ModelSpec:
    """A Claude model served by the fake at the Anthropic /v1/messages wire protocol."""
    return ModelSpec("anthropic/claude-haiku-4-5-20251001", timeout=timeout, api_base=up.url, **kw)


def openai(up: FakeUpstream, timeout: float = 5.0, **kw: Any) -> ModelSpec:
    """A model served by the fake at the OpenAI /v1/chat/completions wire protocol."""
    return ModelSpec("openai/gpt-test", timeout=timeout, api_base=f"{up.url}/v1", **kw)


@dataclass
class Running:
    """A started server: the app, its address, a channel and stub on it, a typed client."""

    app: App
    target: str
    channel: grpc.aio.Channel
    stub: router_pb2_grpc.RouterStub
    client: AsyncRouterClient

    async def route(self, text: str = "What now?", **fields: Any) -> router_pb2.RouteResponse:
        """Route one user message ``text`` (with the request's other ``fields``)."""
        request = router_pb2.RouteRequest(
            messages=[router_pb2.Message(role="user", content=text)], **fields
        )
        response: router_pb2.RouteResponse = await self.stub.Route(request, timeout=30)
        return response

    async def health(self, service: str = "") -> health_pb2.HealthCheckResponse:
        """The standard health check of ``service`` (the server as a whole by default)."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        reply: health_pb2.HealthCheckResponse = await stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return reply


class Serve(Protocol):
    def __call__(
        self,
        models: Sequence[ModelSpec],
        *,
        chains: Mapping[str, Sequence[ModelSpec]] | None = None,
        provider: Provider | None = None,
        **config: Any,
    ) -> Awaitable[Running]: ...


@pytest.fixture
async def serve(api_keys: None) -> AsyncIterator[Serve]:
    """A factory: ``server = await serve(models, ...)`` starts a server (see ``Serve``);
    all are stopped at teardown."""
    running: list[Running] = []

    async def start(
        models: Sequence[ModelSpec],
        *,
        chains: Mapping[str, Sequence[ModelSpec]] | None = None,
        provider: Provider | None = None,
        **config: Any,
    ) -> Running:
        all_chains = {"default": ChainSpec("default", tuple(models))}
        for name, chain_models in (chains or {}).items():
            all_chains[name] = ChainSpec(name, tuple(chain_models))
        server = replace(ServerConfig(listen="127.0.0.1:0"), **config.pop("server", {}))
        cfg = Config(server=server, chains=all_chains, **config)
        app = App(cfg, provider=provider)
        port = await app.start()
        target = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(target)
        result = Running(
            app=app,
            target=target,
            channel=channel,
            stub=router_pb2_grpc.RouterStub(channel),
            client=AsyncRouterClient(target),
        )
        running.append(result)
        return result

    yield start
    for r in running:
        await r.client.close()
        await r.channel.close()
        await r.app.stop(0)
