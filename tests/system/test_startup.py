"""Start-up with litellm loading in the background: SERVING early, no call answered half-loaded."""

from __future__ import annotations

import asyncio
import signal
import textwrap
from pathlib import Path

import grpc
import pytest

from llm_router.v1 import router_pb2, router_pb2_grpc
from tests.support.config_files import config_file
from tests.support.fixtures import Upstream
from tests.support.net import free_port
from tests.support.processes import ServerProcess, run_script
from tests.support.upstream import Answer, FakeUpstream

pytestmark = pytest.mark.timeout(90)


def config(tmp_path: Path, up: FakeUpstream) -> Path:
    """Chain ``native``: an ollama_chat/ model; ``litellm``: an ollama/ one (litellm only)."""
    return config_file(
        tmp_path,
        f"""
default_chain = "native"
[server]
listen = "127.0.0.1:{free_port()}"
[chains.native]
models = [{{ model = "ollama_chat/qwen2.5:7b", timeout = 30, api_base = "{up.url}" }}]
[chains.litellm]
models = [{{ model = "ollama/qwen2.5:7b", timeout = 30, api_base = "{up.url}" }}]
""",
    )


async def test_a_route_that_needs_litellm_right_after_serving_waits_for_it_and_succeeds(
    tmp_path: Path, upstream: Upstream
) -> None:
    up = upstream(Answer("hello"))
    async with ServerProcess(config(tmp_path, up)) as server:
        proc = server.process
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            message = router_pb2.Message(role="user", content="hi")
            native, via_litellm = await asyncio.gather(
                stub.Route(router_pb2.RouteRequest(messages=[message]), timeout=60),
                stub.Route(
                    router_pb2.RouteRequest(messages=[message], chain="litellm"), timeout=60
                ),
            )
        assert native.content.string_value == "hello"
        assert via_litellm.content.string_value == "hello"
        assert [a.reason_category for a in via_litellm.attempts] == [
            router_pb2.REASON_CATEGORY_UNSPECIFIED
        ]
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    output = server.output
    # litellm finished loading before the call that needed it was answered.
    ready = output.index("litellm ready in")
    assert output.index("ollama/qwen2.5:7b -> success") > ready
    assert sorted(r.path for r in up.chat_requests()) == ["/api/chat", "/api/generate"]


def test_the_seed_chain_serves_a_schema_through_claude_without_ever_importing_litellm() -> None:
    """Ollama fails, Claude Haiku answers with a schema (structured output): litellm is not
    even imported, so the first fallback after start pays no import (issue 14, item 2)."""
    script = textwrap.dedent(
        """
        import asyncio, json, os, sys, time
        import grpc
        from llm_router.v1 import router_pb2, router_pb2_grpc
        from llm_router_server.app import App
        from llm_router_server.config import Config, ServerConfig, default_chains
        from tests.support.upstream import Answer, FakeUpstream, HttpError

        SCHEMA = {"type": "object", "required": ["action"], "additionalProperties": False,
                  "properties": {"action": {"enum": ["restart", "escalate"]}}}

        async def main(local, cloud):
            env = {"OLLAMA_API_BASE": local.url}
            os.environ["ANTHROPIC_API_BASE"] = cloud.url
            config = Config(server=ServerConfig(listen="127.0.0.1:0"), chains=default_chains(env))
            app = App(config)
            port = await app.start()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = router_pb2_grpc.RouterStub(channel)
                request = router_pb2.RouteRequest(
                    messages=[router_pb2.Message(role="user", content="nginx is down")],
                    schema=json.dumps(SCHEMA),
                )
                started = time.monotonic()
                reply = await stub.Route(request, timeout=30)
                print("FIRST_FALLBACK_S", round(time.monotonic() - started, 3))
            ready = app.provider.litellm_ready
            await app.stop(0)
            print("MODEL", reply.model_used, json.loads(reply.raw_text))
            print("LITELLM", ready, "litellm" in sys.modules)

        with FakeUpstream() as local, FakeUpstream() as cloud:
            local.default = HttpError(503)
            cloud.default = Answer('{"action": "restart"}')
            asyncio.run(main(local, cloud))
            body = cloud.chat_requests()[0].body
            print("SENT", sorted(k for k in ("output_format", "tools") if k in body))
        """
    )
    done = run_script(script, env={"ANTHROPIC_API_KEY": "sk-ant-api03-TESTKEY0123456789"})
    assert "MODEL claude-haiku-4-5-20251001 {'action': 'restart'}" in done.stdout, done.stdout
    assert "LITELLM False False" in done.stdout, done.stdout
    assert "SENT ['output_format']" in done.stdout, done.stdout
