"""The Python clients against a secured server: bearer token, TLS, mTLS, and the errors (with
a hint) when the client's settings do not match the server's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from llm_router import (
    TLS,
    AsyncRouterClient,
    Connection,
    ConnectionFailedError,
    RouterClient,
    UnauthenticatedError,
)
from tests.support.apps import TOKEN, SecureServe
from tests.support.certs import PKI, make_pki
from tests.support.net import free_port
from tests.support.server import Serve, ollama
from tests.support.upstream import Answer, FakeUpstream

pytestmark = pytest.mark.timeout(60)
HI = [{"role": "user", "content": "hi"}]


async def test_async_client_calls_a_tls_and_token_server(
    secure_serve: SecureServe, pki: PKI
) -> None:
    server = await secure_serve()
    async with AsyncRouterClient(server.target, token=TOKEN, tls=TLS(ca=str(pki.ca))) as client:
        result = await client.route(HI, context="tls.async", timeout=20)
    assert result.content == "over tls"
    assert result.model_used == "ollama_chat/qwen2.5:7b"


async def test_blocking_client_calls_a_tls_and_token_server(
    secure_serve: SecureServe, pki: PKI
) -> None:
    server = await secure_serve(answer='{"action": "restart"}')

    def call() -> object:
        with RouterClient(server.target, token=TOKEN, tls=TLS(ca=str(pki.ca))) as client:
            return client.route(HI, schema={"type": "object"}, timeout=20).content

    assert await asyncio.to_thread(call) == {"action": "restart"}


async def test_mtls_needs_the_client_certificate_and_says_so(
    secure_serve: SecureServe, pki: PKI
) -> None:
    server = await secure_serve(mtls=True, answer="mutual")
    tls = TLS(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
    async with AsyncRouterClient(server.target, token=TOKEN, tls=tls) as client:
        assert (await client.route(HI, timeout=20)).content == "mutual"
    async with AsyncRouterClient(server.target, token=TOKEN, tls=TLS(ca=str(pki.ca))) as client:
        with pytest.raises(ConnectionFailedError) as info:
            await client.route(HI, timeout=10)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert "client certificate" in info.value.hint
    assert "--cert" in str(info.value)


async def test_a_missing_token_is_unauthenticated_with_a_hint(
    secure_serve: SecureServe, pki: PKI
) -> None:
    server = await secure_serve()
    async with AsyncRouterClient(server.target, tls=TLS(ca=str(pki.ca))) as client:
        with pytest.raises(UnauthenticatedError) as info:
            await client.route(HI, timeout=10)
    assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in info.value.message
    assert "LLM_ROUTER_TOKEN" in info.value.hint and "--token" in info.value.hint


async def test_a_wrong_token_is_unauthenticated_and_never_echoed(
    secure_serve: SecureServe, pki: PKI
) -> None:
    server = await secure_serve()
    wrong = "wrong-0123456789abcdef"
    async with AsyncRouterClient(server.target, token=wrong, tls=TLS(ca=str(pki.ca))) as client:
        with pytest.raises(UnauthenticatedError) as info:
            await client.route(HI, timeout=10)
    assert info.value.hint == "the server did not accept this token"
    assert wrong not in str(info.value) and TOKEN not in str(info.value)
    assert wrong not in repr(Connection(server.target, token=wrong))


async def test_plaintext_against_tls_says_the_server_serves_tls(
    secure_serve: SecureServe,
) -> None:
    server = await secure_serve()
    async with AsyncRouterClient(server.target, token=TOKEN) as client:
        with pytest.raises(ConnectionFailedError) as info:
            await client.route(HI, timeout=10)
    assert "probably serves TLS" in info.value.hint
    assert "LLM_ROUTER_CA" in info.value.hint


async def test_tls_against_plaintext_says_the_server_speaks_plaintext(
    serve: Serve, upstream: type[FakeUpstream], pki: PKI
) -> None:
    up = upstream()
    up.default = Answer("plain")
    server = await serve([ollama(up)])
    async with AsyncRouterClient(server.target, tls=TLS(ca=str(pki.ca))) as client:
        with pytest.raises(ConnectionFailedError) as info:
            await client.route(HI, timeout=10)
    assert info.value.hint == "the server speaks plaintext: connect without TLS options"


async def test_an_untrusted_certificate_asks_for_the_ca(
    secure_serve: SecureServe, tmp_path: Path
) -> None:
    server = await secure_serve()
    other = make_pki(tmp_path / "other")
    async with AsyncRouterClient(server.target, token=TOKEN, tls=TLS(ca=str(other.ca))) as client:
        with pytest.raises(ConnectionFailedError) as info:
            await client.route(HI, timeout=10)
    assert "not signed by a CA this client trusts" in info.value.hint


async def test_server_name_checks_a_certificate_issued_for_another_name(
    serve: Serve, upstream: type[FakeUpstream], tmp_path: Path
) -> None:
    """A certificate for router.internal only: reaching it by IP fails with a hint, and
    passes with server_name="router.internal"."""
    from llm_router_server.config import TLSConfig

    named = make_pki(tmp_path / "named", names="DNS:router.internal")
    up = upstream()
    up.default = Answer("named")
    tls_config = TLSConfig(cert_file=str(named.server_cert), key_file=str(named.server_key))
    server = await serve([ollama(up)], tls=tls_config)
    async with AsyncRouterClient(server.target, tls=TLS(ca=str(named.ca))) as client:
        with pytest.raises(ConnectionFailedError) as info:
            await client.route(HI, timeout=10)
    assert "server_name" in info.value.hint and "--server-name" in info.value.hint
    tls = TLS(ca=str(named.ca), server_name="router.internal")
    async with AsyncRouterClient(server.target, tls=tls) as client:
        assert (await client.route(HI, timeout=20)).content == "named"


async def test_nothing_listening_says_so() -> None:
    async with AsyncRouterClient(f"127.0.0.1:{free_port()}") as client:
        with pytest.raises(ConnectionFailedError) as info:
            await client.route(HI, timeout=5)
    assert "nothing listens" in info.value.hint


async def test_from_env_reads_every_setting(secure_serve: SecureServe, pki: PKI) -> None:
    server = await secure_serve(mtls=True, answer="from env")
    env = {
        "LLM_ROUTER_TARGET": server.target,
        "LLM_ROUTER_TOKEN": TOKEN,
        "LLM_ROUTER_CA": str(pki.ca),
        "LLM_ROUTER_CERT": str(pki.client_cert),
        "LLM_ROUTER_KEY": str(pki.client_key),
    }
    async with AsyncRouterClient.from_env(env) as client:
        assert (await client.route(HI, timeout=20)).content == "from env"

    def blocking() -> object:
        with RouterClient.from_env(env) as client:
            return client.route(HI, timeout=20).content

    assert await asyncio.to_thread(blocking) == "from env"


def test_connection_from_env_and_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert Connection.from_env({}) == Connection("127.0.0.1:50051")
    read = Connection.from_env(
        {"LLM_ROUTER_TARGET": "a:1,b:2", "LLM_ROUTER_TOKEN_FILE": str(token_file)}
    )
    assert read == Connection("a:1,b:2", token=TOKEN, tls=None)
    assert Connection.from_env({"LLM_ROUTER_TLS": "1"}).tls == TLS()
    assert Connection.from_env({"LLM_ROUTER_SERVER_NAME": "r.internal"}).tls == TLS(
        server_name="r.internal"
    )
    assert read.metadata == (("authorization", f"Bearer {TOKEN}"),)


def test_unreadable_files_and_half_a_client_certificate_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read the CA file '.*missing\.pem'"):
        RouterClient("127.0.0.1:1", tls=TLS(ca=str(tmp_path / "missing.pem")))
    with pytest.raises(ValueError, match="needs both cert and key"):
        RouterClient("127.0.0.1:1", tls=TLS(cert=str(tmp_path / "c.pem")))
    with pytest.raises(ValueError, match="cannot read the token file"):
        Connection.from_env({"LLM_ROUTER_TOKEN_FILE": str(tmp_path / "none")})
    with pytest.raises(ValueError, match="inside the Connection"):
        RouterClient(Connection("127.0.0.1:1"), token=TOKEN)
