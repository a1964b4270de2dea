"""Fuzzing hostile schemas and answers over the wire (hypothesis): every call ends OK with a
deliverable answer, or with a clear status, never INTERNAL or UNKNOWN; the server keeps
answering health checks throughout.

Generated, not only the issue's reproductions: backtracking patterns in every place a
regex goes, ``$ref`` fan-outs of any width and depth, odd ``$schema`` and reference values,
numbers past a double, and answers nested deep, with huge numbers, NaN, lone surrogates,
long strings. Chain [main, normal]: main answers the hostile text, normal a generated one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server.config import Config, ServerConfig
from llm_router_server.routing.validation.offload import ValidationPolicy
from llm_router_server.types import ChainSpec, ModelSpec
from tests.support.threaded import CLEAR, ThreadedServer
from tests.support.upstream import Answer, Behaviour, FakeUpstream

pytestmark = pytest.mark.timeout(300)

STALL_LIMIT_S = 1.0
"""Slowest health reply tolerated (the server shares this process's GIL with hypothesis)."""


class Server:
    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.up = FakeUpstream()

        def choose(path: str, body: Any) -> Behaviour | None:
            if not isinstance(body, dict) or "messages" not in body:
                return None
            return Answer(self.answers.get(str(body.get("model")), "{}"))

        self.up.choose = choose
        models = tuple(
            ModelSpec(f"ollama_chat/{m}", timeout=10, api_base=self.up.url)
            for m in ("main", "normal")
        )
        config = Config(
            server=ServerConfig(listen="127.0.0.1:0"),
            validation=ValidationPolicy(answer_budget_ms=300, schema_budget_ms=1000),
            chains={"default": ChainSpec("default", models)},
        )
        self.server = ThreadedServer(config)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.server.port}")
        self.stub = router_pb2_grpc.RouterStub(self.channel)
        self.worst_health = 0.0
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        health = health_pb2_grpc.HealthStub(self.channel)
        while not self._stop.wait(0.02):
            started = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(), timeout=60)
            self.worst_health = max(self.worst_health, time.perf_counter() - started)

    def close(self) -> None:
        self._stop.set()
        self._poller.join(10)
        self.channel.close()
        self.server.close()
        self.up.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
        assert s.worst_health < STALL_LIMIT_S, s.worst_health
    finally:
        s.close()


# -- schemas ---------------------------------------------------------------------------------

backtracking = st.builds(
    lambda atom, tail: f"^({atom}+)+{tail}",
    st.sampled_from(["a", "ab", "\\w", "[a-z]", "a|a", "(a|aa)"]),
    st.sampled_from(["$", "b$", ""]),
)
regex_places = st.one_of(
    backtracking.map(lambda p: {"type": "object", "properties": {"s": {"pattern": p}}}),
    backtracking.map(lambda p: {"type": "object", "patternProperties": {p: {}}}),
    backtracking.map(lambda p: {"type": "object", "propertyNames": {"pattern": p}}),
    backtracking.map(lambda p: {"type": "array", "items": {"type": "string", "pattern": p}}),
)


def fan(levels: int, width: int) -> dict[str, Any]:
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * width} for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "object"}
    return {"$ref": "#/$defs/d0", "$defs": defs}


fan_outs = st.builds(fan, st.integers(1, 24), st.integers(1, 3))
ref_values = st.one_of(
    st.sampled_from(["#", "#/$defs/x", "#/nowhere", "#anchor", "http://127.0.0.1:9/x", "x.json"]),
    st.text(max_size=20),
)
refs = st.builds(
    lambda keyword, ref: {"$defs": {"x": {"type": "object"}}, keyword: ref},
    st.sampled_from(["$ref", "$dynamicRef", "$recursiveRef"]),
    ref_values,
)
big_numbers = st.one_of(
    st.builds(
        lambda sign, digits: sign + digits,
        st.sampled_from(["", "-"]),
        st.text("0123456789", min_size=1, max_size=6000).map(lambda d: "1" + d),
    ),
    st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "1e-400", "0.1"]),
)
number_keywords = st.builds(
    lambda keyword, number: f'{{"type": "number", "{keyword}": {number}}}',
    st.sampled_from(["minimum", "maximum", "multipleOf", "exclusiveMinimum", "const"]),
    big_numbers,
)
odd_dialects = st.builds(
    lambda value: {"$schema": value, "type": "object"},
    st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2), st.text(max_size=30),
              st.sampled_from(["http://json-schema.org/draft-07/schema#",
                               "https://json-schema.org/draft/2020-12/schema"])),
)  # fmt: skip
deep_schemas = st.integers(1, 40).map(lambda n: '{"items":' * n + "{}" + "}" * n)
schemas = st.one_of(
    regex_places.map(json.dumps),
    fan_outs.map(json.dumps),
    refs.map(json.dumps),
    number_keywords,
    odd_dialects.map(json.dumps),
    deep_schemas,
    st.sampled_from(["true", "false", "{}", '{"type":"array","uniqueItems":true}']),
)

# -- answers ---------------------------------------------------------------------------------

deep_answers = st.builds(
    lambda n, kind: ("[" * n + "]" * n) if kind else ('{"a":' * n + "1" + "}" * n),
    st.integers(1, 3000),
    st.booleans(),
)
answers = st.one_of(
    deep_answers,
    big_numbers,
    st.sampled_from(['"\\ud800"', '{"\\udc00": 1}', '["ok", "\\udfff"]', "free \ud800 text"]),
    st.integers(10, 40).map(lambda n: json.dumps({"s": "a" * n + "!", "a" * n + "!": 1})),
    st.integers(10, 40).map(lambda n: json.dumps(["a" * n + "!"])),
    st.integers(100, 6000).map(lambda n: json.dumps([{"i": i} for i in range(n)])),
    st.text(max_size=200),
    st.sampled_from(["{}", "[]", '{"s": "aaa"}', "```json\n{}\n```"]),
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(schema=schemas, main=answers, normal=answers)
def test_every_hostile_call_ends_ok_and_deliverable_or_with_a_clear_status(
    server: Server, schema: str, main: str, normal: str
) -> None:
    server.answers.update({"main": main, "normal": normal})
    request = router_pb2.RouteRequest(
        messages=[router_pb2.Message(role="user", content="go")], schema=schema
    )
    try:
        reply = server.stub.Route(request, timeout=30)
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        assert code in CLEAR, (code, exc.details())  # type: ignore[attr-defined]
        assert exc.details()  # type: ignore[attr-defined]
    else:
        assert reply.model_used in ("ollama_chat/main", "ollama_chat/normal")
        assert reply.raw_text in (main, normal)
        reply.content.SerializeToString()  # decodable as received, and re-encodable
