"""Issue 10, item 5: secrets stay in the process.

Before: with ``api_base = "http://user:p4ss@host:port"`` the password appeared in the
Prometheus label ``api_base``, in WatchMetrics ``CircuitChange.api_base`` and in Redis key
names; ``Authorization: Basic <b64>`` kept its base64 through the scrubber; a key without
the ``sk-`` prefix or a ``password=`` value passed everywhere; URL credentials on the
``openai/`` path failed every call ("Cannot combine AUTHORIZATION header with AUTH
argument"). After: circuits show an api_base without credentials (one function,
``safe_text.without_credentials``), every key, token and URL credential of the
configuration and the environment is redacted by value wherever text leaves the process
(reasons, status messages, events, log lines), ``Basic`` and ``password=`` by pattern too,
and URL credentials where they cannot work stop start-up naming the key.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import redis

from llm_router.client import route_failure
from llm_router.v1 import router_pb2, router_pb2_grpc
from llm_router_server import config
from llm_router_server.errors import ConfigError
from llm_router_server.safe_text import redact, without_credentials
from llm_router_server.types import ModelSpec, RouteEvent
from tests.support.net import free_port
from tests.support.processes import ServerProcess, run_command
from tests.support.redis_server import RedisServer
from tests.support.server import Serve
from tests.support.upstream import Answer, FakeUpstream, HttpError

pytestmark = pytest.mark.timeout(120)

PASSWORD = "p4ss-Word_7"
USERINFO = f"router:{PASSWORD}"
BASIC = base64.b64encode(USERINFO.encode()).decode()
PLAIN_KEY = "acme-live-0123456789abcdefXYZ"  # no sk- prefix: only its value gives it away
ENV_TOKEN = "envtoken-0123456789-abcdef"


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{USERINFO}@")


def leaks(text: str) -> list[str]:
    """The secrets of these tests found in ``text``."""
    return [s for s in (PASSWORD, BASIC, PLAIN_KEY, ENV_TOKEN) if s in text]


def echo_body(extra: str = "", *, userinfo: bool = True) -> dict[str, str]:
    """An upstream error that echoes every credential it was sent, as careless ones do."""
    sent = f" for {USERINFO}@upstream" if userinfo else ""
    return {
        "error": f"overloaded; you sent Authorization: Basic {BASIC}{sent} "
        f"(password={PASSWORD}) {extra}"
    }


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


async def test_url_credentials_never_leave_the_process(
    tmp_path: Path, upstream: Callable[[], FakeUpstream], redis_server: RedisServer
) -> None:
    """A model whose api_base carries user:password fails until its circuit opens, with
    Redis (events, shared circuits) and Prometheus on. The credentials reach the model (HTTP
    Basic) and nothing else: not the circuit's Redis key, the Prometheus label, the
    WatchMetrics CircuitChange, the attempt reasons, the status or the log."""
    locked, good = upstream(), upstream()
    locked.default = HttpError(503, echo_body(f"key {PLAIN_KEY}, token {ENV_TOKEN}"))
    good.default = Answer("fine")
    port, prometheus = free_port(), free_port()
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
[metrics]
redis_url = "{redis_server.url}"
prometheus_listen = "127.0.0.1:{prometheus}"
[breaker]
failure_threshold = 1
[[chains.default.models]]
model = "ollama_chat/locked"
api_base = "{with_credentials(locked.url)}"
[[chains.default.models]]
model = "anthropic/claude-haiku-4-5"
api_base = "{good.url}"
params = {{ api_key = "{PLAIN_KEY}" }}
"""
    )
    env_token = {"ACME_SERVICE_TOKEN": ENV_TOKEN}
    server = ServerProcess(path, env=env_token)
    target = f"127.0.0.1:{port}"
    try:
        await server.wait_healthy()
        async with grpc.aio.insecure_channel(target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            watch = stub.WatchMetrics(router_pb2.WatchMetricsRequest())
            assert (await watch.read()).WhichOneof("kind") == "snapshot"
            request = router_pb2.RouteRequest(
                messages=[router_pb2.Message(role="user", content="hi")]
            )
            reply = await stub.Route(request, timeout=30)
            change = None
            while change is None:
                message = await asyncio.wait_for(watch.read(), 10)
                if message.WhichOneof("kind") == "circuit":
                    change = message.circuit
            watch.cancel()
            locked.default = HttpError(503, echo_body())
            good.default = HttpError(500, echo_body(f"key {PLAIN_KEY}"))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Route(request, timeout=30)
        metrics = await asyncio.to_thread(scrape, prometheus)
        keys = redis.Redis(port=redis_server.port, decode_responses=True).keys("llm_router*")
    finally:
        server.stop(signal.SIGINT)
        output = server.output

    # The credentials did reach the model, as HTTP Basic authentication.
    assert locked.chat_requests()[0].headers["Authorization"] == f"Basic {BASIC}"
    assert good.chat_requests()[0].headers["x-api-key"] == PLAIN_KEY
    assert reply.content.string_value == "fine"
    # ... and nothing else.
    assert change.api_base == locked.url
    assert f'llm_router_circuit_state{{api_base="{locked.url}",model="ollama_chat/locked"}}' in (
        metrics
    )
    assert f"llm_router:breaker:ollama_chat/locked|{locked.url}" in keys
    failure = route_failure(info.value.trailing_metadata())
    assert failure is not None
    texts = {
        "first reply": str(reply),
        "circuit change": str(change),
        "status": info.value.details() or "",
        "failure": str(failure),
        "metrics": metrics,
        "redis keys": " ".join(keys),
        "log": output,
    }
    assert {name: leaks(text) for name, text in texts.items() if leaks(text)} == {}
    assert USERINFO not in output and "circuit closed -> open" in output


async def test_keys_of_any_shape_are_redacted_by_value_and_credentials_by_pattern(
    serve: Serve, upstream: Callable[[], FakeUpstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured key without the sk- prefix, a token from the environment, a Basic
    header and a password= pair echoed by the provider: none reaches the reply's
    attempts or the event."""
    monkeypatch.setenv("ACME_SERVICE_TOKEN", ENV_TOKEN)
    bad, good = upstream(), upstream()
    bad.default = HttpError(
        401, echo_body(f"invalid key {PLAIN_KEY}; token {ENV_TOKEN}", userinfo=False)
    )
    good.default = Answer("fine")
    spec = ModelSpec(
        "anthropic/claude-haiku-4-5", 5, api_base=bad.url, params={"api_key": PLAIN_KEY}
    )
    server = await serve([spec, ModelSpec("ollama_chat/good", 5, api_base=good.url)])
    events: list[RouteEvent] = []
    server.app.bus.observe(events.append)
    reply = await server.route()
    assert reply.content.string_value == "fine"
    reason = reply.attempts[0].reason
    assert reason.startswith("HTTP 401 from provider: overloaded; you sent Authorization: ***")
    assert "(password=*** invalid key ***; token ***" in reason
    assert leaks(str(reply)) == [] and leaks(str(events)) == []


def test_redaction_patterns() -> None:
    assert redact(f"Authorization: Basic {BASIC}") == "Authorization: ***"
    assert redact(f"sent Basic {BASIC} again") == "sent Basic *** again"
    assert redact("Basic authentication failed") == "Basic authentication failed"
    assert redact("db password=hunter2&user=x") == "db password=***&user=x"
    assert redact('{"api_key": "abc123def", "n": 1}') == '{"api_key": "***", "n": 1}'
    assert redact("see https://bob:secret@example.com/x") == "see https://***@example.com/x"
    assert redact("max_tokens=4096 tokens") == "max_tokens=4096 tokens"


def test_an_api_base_is_shown_without_credentials_query_or_fragment() -> None:
    shown = without_credentials(f"https://{USERINFO}@example.com:8443/v1?key=k#f")
    assert shown == "https://example.com:8443/v1"
    assert without_credentials("http://127.0.0.1:11434") == "http://127.0.0.1:11434"


@pytest.mark.parametrize(
    "model",
    [
        '{ model = "openai/gpt-4o-mini", api_base = "https://u:pw@proxy.example/v1" }',
        '{ model = "ollama_chat/q", provider = "litellm", api_base = "http://u:pw@host:1" }',
        '{ model = "ollama/q", api_base = "http://u:pw@host:1" }',
    ],
    ids=["openai", "forced-litellm", "litellm-only"],
)
def test_url_credentials_where_they_cannot_work_stop_start_up_naming_the_key(
    tmp_path: Path, model: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[chains.default]\nmodels = [{model}]\n")
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    message = str(info.value)
    assert message.startswith("chains.default.models[0].api_base: user:password@ in the URL")
    assert "pw" not in message.replace("password", "")


def test_the_openai_refusal_reaches_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[chains.default]\nmodels = [{ model = "openai/gpt-4o-mini", '
        'api_base = "https://u:pw-0123456789@proxy.example/v1" }]\n'
    )
    done = run_command("serve", "--config", str(path))
    assert done.returncode == 2
    assert "chains.default.models[0].api_base: user:password@ in the URL" in done.stderr
    assert "Authorization header" in done.stderr and "pw-0123456789" not in done.stderr
