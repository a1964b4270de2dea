"""Fuzzing RouteRequest over the wire (hypothesis): every request gets OK or a clear error
status, never INTERNAL or UNKNOWN, and the server stays up.

The server runs on its own event loop in a thread (real grpc.aio server, real litellm, a
FakeUpstream answering), so that hypothesis can drive it with a plain synchronous channel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server.config import Config, Limits, ServerConfig
from llm_router_server.types import ChainSpec
from tests.support.server import ollama
from tests.support.threaded import CLEAR, ThreadedServer
from tests.support.upstream import Answer, FakeUpstream

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stub() -> Iterator[router_pb2_grpc.RouterStub]:
    up = FakeUpstream()
    up.default = Answer('{"answer": "ok"}')
    limits = Limits(max_messages=8, max_message_chars=2000, max_schema_chars=4000)
    config = Config(
        server=ServerConfig(listen="127.0.0.1:0", max_receive_bytes=64 * 1024),
        limits=limits,
        chains={"default": ChainSpec("default", (ollama(up, timeout=5),))},
    )
    server = ThreadedServer(config)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield router_pb2_grpc.RouterStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()
        server.close()
        up.close()


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
roles = st.one_of(st.sampled_from(["system", "user", "assistant"]), text)
messages = st.lists(st.builds(router_pb2.Message, role=roles, content=text), max_size=10)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
schema_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["object", "string", "array", "nonsense", 3])},
    optional={
        "required": st.lists(text, max_size=3),
        "properties": st.dictionaries(text, st.just({"type": "string"}), max_size=3),
        "items": json_values,
        "enum": st.lists(json_values, max_size=3),
        "$ref": text,
        "pattern": text,
    },
)
schemas = st.one_of(
    st.just(""),
    text,
    json_values.map(json.dumps),
    schema_like.map(json.dumps),
    st.integers(1, 300).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 300).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(1, 5000).map(lambda n: "x" * n),
)
requests = st.builds(
    router_pb2.RouteRequest,
    messages=messages,
    schema=schemas,
    context=text,
    chain=st.one_of(st.just(""), st.just("default"), text),
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests)
def test_every_request_gets_ok_or_a_clear_status(
    stub: router_pb2_grpc.RouterStub, request: router_pb2.RouteRequest
) -> None:
    try:
        reply = stub.Route(request, timeout=10)
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        assert code in CLEAR, (code, exc.details())  # type: ignore[attr-defined]
        assert exc.details()  # type: ignore[attr-defined]
    else:
        assert reply.model_used == "ollama_chat/qwen2.5:7b"
