"""Fixtures of the client and deployment tests: a test PKI, a router started from a whole
``Config`` (``start_app``), and one serving TLS with a bearer token (``secure_serve``).
The conftest of each folder that uses them imports them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from llm_router_server.app import App
from llm_router_server.config import AuthConfig, Config, ServerConfig, TLSConfig
from llm_router_server.types import ChainSpec, ModelSpec
from tests.support.certs import PKI, make_pki
from tests.support.server import Running, Serve, anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream

TOKEN = "tok-0123456789abcdef-secret"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


SecureServe = Callable[..., Awaitable[Running]]


@pytest.fixture
def secure_serve(serve: Serve, upstream: Callable[[], FakeUpstream], pki: PKI) -> SecureServe:
    """Start a router with TLS (``mtls=True``: client certificates required) and, unless
    ``token=""``, the bearer token ``TOKEN``; its models answer ``answer``."""

    async def start(
        *, mtls: bool = False, token: str = TOKEN, answer: str = "over tls", **config: Any
    ) -> Running:
        up = upstream()
        up.default = Answer(answer)
        tls = TLSConfig(
            cert_file=str(pki.server_cert),
            key_file=str(pki.server_key),
            client_ca_file=str(pki.ca) if mtls else "",
        )
        auth = AuthConfig(tokens=(token,) if token else ())
        return await serve([ollama(up), anthropic(up)], tls=tls, auth=auth, **config)

    return start


@pytest.fixture
async def start_app(api_keys: None) -> AsyncIterator[StartApp]:
    """Start an ``App`` from a whole ``Config`` (listening on 127.0.0.1, port 0 unless the
    config says otherwise); ``await stop(app)`` stops one early; the rest stop at teardown."""
    apps: list[App] = []

    async def start(config: Config) -> tuple[App, str]:
        if config.server.listen == ServerConfig.listen:
            config = replace(config, server=replace(config.server, listen="127.0.0.1:0"))
        app = App(config)
        port = await app.start()
        apps.append(app)
        return app, f"127.0.0.1:{port}"

    yield start
    for app in apps:
        await app.stop(0)


StartApp = Callable[[Config], Awaitable[tuple[App, str]]]


def chain(*models: ModelSpec, name: str = "default", **options: Any) -> dict[str, ChainSpec]:
    return {name: ChainSpec(name, models, **options)}
