"""Security basics over a real server: bearer tokens, TLS and mTLS, receive and schema
limits, and secrets kept out of replies, statuses, events and logs."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server.config import AuthConfig, TLSConfig
from tests.support.fixtures import ANTHROPIC_KEY, Upstream
from tests.support.server import HI, Running, Serve, anthropic, ollama
from tests.support.upstream import Answer, HttpError

pytestmark = pytest.mark.timeout(30)
TOKEN = "tok-0123456789abcdef-secret"


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def code_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code(), info.value.details() or ""


# -- bearer tokens ---------------------------------------------------------------------------


async def test_without_a_token_route_is_unauthenticated(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream())], auth=AuthConfig(tokens=(TOKEN,)))
    code, message = await code_of(server.stub.Route(HI, timeout=5))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in message


async def test_a_wrong_token_is_unauthenticated_and_not_echoed(
    serve: Serve, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve([ollama(upstream())], auth=AuthConfig(tokens=(TOKEN,)))
    wrong = "wrong-0123456789abcdef"
    code, message = await code_of(server.stub.Route(HI, timeout=5, metadata=bearer(wrong)))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert wrong not in message and TOKEN not in message
    assert wrong not in caplog.text and TOKEN not in caplog.text
    assert server.app.auth is not None and server.app.auth.rejected == 1


async def test_the_right_token_is_let_through(serve: Serve, upstream: Upstream) -> None:
    up = upstream()
    up.script(Answer("hello"))
    server = await serve([ollama(up)], auth=AuthConfig(tokens=("other-token-0123456789", TOKEN)))
    reply = await server.stub.Route(HI, timeout=5, metadata=bearer(TOKEN))
    assert reply.content.string_value == "hello"


async def test_watch_metrics_needs_the_token_too(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream())], auth=AuthConfig(tokens=(TOKEN,)))
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stream:
            pass
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_health_stays_open_without_a_token(serve: Serve, upstream: Upstream) -> None:
    server = await serve([ollama(upstream())], auth=AuthConfig(tokens=(TOKEN,)))
    reply = await server.health()
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# -- TLS and mTLS ----------------------------------------------------------------------------


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed EC certificate for 127.0.0.1, made with the openssl command."""
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return key, cert


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("certs")
    server_key, server_cert = self_signed(directory, "server")
    client_key, client_cert = self_signed(directory, "client")
    return {
        "server_key": server_key,
        "server_cert": server_cert,
        "client_key": client_key,
        "client_cert": client_cert,
    }


async def tls_server(
    serve: Serve,
    upstream: Upstream,
    certs: dict[str, Path],
    answer: str,
    client_ca_file: str = "",
    **config: Any,
) -> Running:
    """A server on TLS with the server certificate (for mTLS, also ``client_ca_file``) whose
    one model answers ``answer``."""
    up = upstream(Answer(answer))
    tls = TLSConfig(
        cert_file=str(certs["server_cert"]),
        key_file=str(certs["server_key"]),
        client_ca_file=client_ca_file,
    )
    return await serve([ollama(up)], tls=tls, **config)


async def route_securely(
    target: str, credentials: grpc.ChannelCredentials, seconds: float = 10
) -> router_pb2.RouteResponse:
    """``HI`` over a secure channel to ``target``, within ``seconds``."""
    async with grpc.aio.secure_channel(target, credentials) as channel:
        reply: router_pb2.RouteResponse = await router_pb2_grpc.RouterStub(channel).Route(
            HI, timeout=seconds
        )
        return reply


async def test_tls_serves_a_tls_client_and_refuses_plaintext(
    serve: Serve, upstream: Upstream, certs: dict[str, Path]
) -> None:
    server = await tls_server(serve, upstream, certs, "over tls")
    credentials = grpc.ssl_channel_credentials(certs["server_cert"].read_bytes())
    reply = await route_securely(server.target, credentials)
    assert reply.content.string_value == "over tls"
    code, _ = await code_of(server.stub.Route(HI, timeout=3))  # the fixture's plaintext channel
    assert code is grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate(
    serve: Serve, upstream: Upstream, certs: dict[str, Path]
) -> None:
    client_ca_file = str(certs["client_cert"])
    server = await tls_server(serve, upstream, certs, "mutual", client_ca_file)
    root = certs["server_cert"].read_bytes()
    anonymous = grpc.ssl_channel_credentials(root)
    code, _ = await code_of(route_securely(server.target, anonymous, seconds=5))
    assert code is grpc.StatusCode.UNAVAILABLE
    known = grpc.ssl_channel_credentials(
        root, certs["client_key"].read_bytes(), certs["client_cert"].read_bytes()
    )
    reply = await route_securely(server.target, known)
    assert reply.content.string_value == "mutual"


async def test_tls_and_a_token_together(
    serve: Serve, upstream: Upstream, certs: dict[str, Path]
) -> None:
    server = await tls_server(serve, upstream, certs, "both", auth=AuthConfig(tokens=(TOKEN,)))
    credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(certs["server_cert"].read_bytes()),
        grpc.access_token_call_credentials(TOKEN),
    )
    reply = await route_securely(server.target, credentials)
    assert reply.content.string_value == "both"


# -- limits ----------------------------------------------------------------------------------


async def test_a_request_over_the_receive_limit_is_resource_exhausted(
    serve: Serve, upstream: Upstream
) -> None:
    up = upstream()
    server = await serve([ollama(up)], server={"max_receive_bytes": 64 * 1024})
    big = router_pb2.RouteRequest(messages=[router_pb2.Message(role="user", content="x" * 100_000)])
    code, _ = await code_of(server.stub.Route(big, timeout=5))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert up.chat_requests() == []
    reply = await server.stub.Route(HI, timeout=5)  # still serving
    assert reply.model_used


@pytest.mark.parametrize(
    "schema",
    [
        json.dumps(
            {"type": "object", "properties": {"a": {"items": {"items": {"items": {}}}}}}
        ).replace("{}", "[" * 40 + "]" * 40),
        "[" * 200_000 + "]" * 200_000,
        "{" * 99_000,
    ],
    ids=["deep-schema", "hostile-deep-array", "unbalanced"],
)
async def test_deep_or_huge_schemas_are_invalid_argument(
    serve: Serve, upstream: Upstream, schema: str
) -> None:
    up = upstream()
    server = await serve([ollama(up)], server={"max_receive_bytes": 1024 * 1024})
    request = router_pb2.RouteRequest(messages=HI.messages, schema=schema)
    code, message = await code_of(server.stub.Route(request, timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in message
    assert up.chat_requests() == []


# -- secrets ---------------------------------------------------------------------------------


async def test_an_api_key_echoed_by_a_provider_reaches_no_reply_status_event_or_log(
    serve: Serve, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    up = upstream()
    leak = {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": f"invalid x-api-key: {ANTHROPIC_KEY} (Authorization: Bearer {TOKEN})",
        },
    }
    up.default = HttpError(401, body=leak)
    server = await serve([anthropic(up)], auth=AuthConfig(tokens=(TOKEN,)))
    events = server.app.bus.subscribe()
    with caplog.at_level(logging.DEBUG), pytest.raises(grpc.aio.AioRpcError) as info:
        await server.stub.Route(HI, timeout=10, metadata=bearer(TOKEN))
    error = info.value
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(error)
    assert status is not None
    failure = router_pb2.RouteFailure()
    status.details[0].Unpack(failure)
    [attempt] = failure.attempts
    assert attempt.reason_category == router_pb2.REASON_CATEGORY_AUTHENTICATION
    event = await events.get()
    texts = [
        error.details() or "",
        attempt.reason,
        str(event),
        caplog.text,
    ]
    for text in texts:
        assert ANTHROPIC_KEY not in text
        assert TOKEN not in text
    assert len(attempt.reason) <= 300
    assert "API key" in caplog.text  # the authentication error is logged loudly


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("http://127.0.0.1:9/evil.json", "is not local"),
        ("other.json#/x", "is not local"),
        ("#/$defs/missing", "does not resolve"),
        ("§\x0f", "is not local"),
    ],
)
async def test_schema_refs_are_never_fetched_and_must_resolve(
    serve: Serve, upstream: Upstream, ref: str, message: str
) -> None:
    """Found by the fuzz suite: an unresolvable $ref was an INTERNAL error at judging time,
    and jsonschema would have fetched a remote one."""
    up = upstream()
    server = await serve([ollama(up)])
    schema = json.dumps({"type": "object", "properties": {"a": {"$ref": ref}}})
    request = router_pb2.RouteRequest(messages=HI.messages, schema=schema)
    code, details = await code_of(server.stub.Route(request, timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    assert up.chat_requests() == []


async def test_a_local_ref_works(serve: Serve, upstream: Upstream) -> None:
    up = upstream(Answer('{"a": "x"}'))
    server = await serve([ollama(up)])
    schema = {
        "type": "object",
        "$defs": {"s": {"type": "string"}},
        "properties": {"a": {"$ref": "#/$defs/s"}},
    }
    reply = await server.stub.Route(
        router_pb2.RouteRequest(messages=HI.messages, schema=json.dumps(schema)), timeout=10
    )
    assert reply.raw_text == '{"a": "x"}'
