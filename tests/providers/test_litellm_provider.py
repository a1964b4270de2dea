"""The litellm path alone: it starts warm, reaches nothing but the configured ``api_base``, and
cleans what providers say into one short line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llm_router_server.providers.litellm_provider import LiteLLMProvider, clean
from tests.support.fixtures import ANTHROPIC_KEY, Upstream
from tests.support.processes import run_script
from tests.support.providers import SCHEMA, question, spec

pytestmark = pytest.mark.usefixtures("api_keys")


async def test_start_warms_litellm_without_calling_anything(upstream: Upstream) -> None:
    up = upstream()
    p = LiteLLMProvider()
    await p.start()
    assert up.requests == []
    completion = await p.complete(spec("anthropic", up.url), question())
    assert completion.text == "ok"
    await p.aclose()


# -- pitfall 1: no connection but to api_base -----------------------------------------------


def test_no_connection_leaves_for_anything_but_the_configured_api_base(tmp_path: Path) -> None:
    """Import, start() and calls connect only to the fake (litellm fetches cost maps and
    Anthropic header configs from GitHub unless offline, and asks localhost:11434 about
    unknown ``ollama/`` models)."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        targets = []
        def audit(event, args):
            if event == "socket.connect":
                targets.append(("connect", str(args[1])))
            elif event == "socket.getaddrinfo":
                targets.append(("resolve", str(args[0]), str(args[1])))
        sys.addaudithook(audit)
        os.environ["ANTHROPIC_API_KEY"] = {ANTHROPIC_KEY!r}
        os.environ.pop("LITELLM_OFFLINE_MODE", None)  # the provider module must set it
        from llm_router_server.providers.litellm_provider import LiteLLMProvider
        from llm_router_server.types import CompletionRequest, Message, ModelSpec
        from tests.support.upstream import FakeUpstream
        schema = {SCHEMA!r}
        async def main(url):
            p = LiteLLMProvider()
            await p.start()
            req = CompletionRequest((Message("user", "hi"),), schema, 5.0)
            for model in ("claude-haiku-4-5-20251001", "ollama/qwen2.5:7b", "ollama_chat/qwen"):
                await p.complete(ModelSpec(model, 5.0, api_base=url), req)
            await p.aclose()
        with FakeUpstream() as up:
            port = up.url.rsplit(":", 1)[1]
            asyncio.run(main(up.url))
            paths = [r.path for r in up.requests]
        foreign = [t for t in targets if "127.0.0.1" not in t[1] or port not in str(t)]
        print("FOREIGN", foreign)
        print("PATHS", paths)
        """
    )
    done = run_script(script, env={"LITELLM_OFFLINE_MODE": None}, timeout=55)
    assert "FOREIGN []" in done.stdout, done.stdout
    assert "PATHS ['/v1/messages', '/api/generate', '/api/chat']" in done.stdout, done.stdout


def test_clean_bounds_and_flattens() -> None:
    assert clean("a\n  b\tc") == "a b c"
    assert len(clean("x" * 1000)) == 300
    assert clean('oops File "/srv/app/x.py", line 3, in f at /srv/app/x.py') == "oops at <path>"
    assert clean("see http://127.0.0.1:1234/api/chat") == "see http://127.0.0.1:1234/api/chat"
