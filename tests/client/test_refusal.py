"""A provider's safety refusal with ``refusal_policy = "stop"`` is a typed ``RefusedError``
carrying the attempts, in both Python clients and the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest

from llm_router import AsyncRouterClient, ChainFailedError, RefusedError, RouterClient
from llm_router_server.config import Config
from tests.support.apps import StartApp, chain
from tests.support.processes import run_command
from tests.support.server import anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream, SafetyRefusal

pytestmark = pytest.mark.timeout(60)
HI = [{"role": "user", "content": "hi"}]
CLAUDE = "anthropic/claude-haiku-4-5-20251001"


async def refusing(start_app: StartApp, upstream: Callable[[], FakeUpstream]) -> str:
    """A chain whose first model (Claude) blocks the answer for safety, and stops there."""
    claude, local = upstream(), upstream()
    claude.default = SafetyRefusal()
    local.default = Answer("never asked")
    config = Config(chains=chain(anthropic(claude), ollama(local), refusal_policy="stop"))
    _, target = await start_app(config)
    return target


def assert_refused(error: RefusedError) -> None:
    assert isinstance(error, ChainFailedError)
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert [(a.model, a.outcome, a.reason_category) for a in error.attempts] == [
        (CLAUDE, "rejected", "safety_refusal")
    ]
    assert error.chain == "default"


async def test_async_client_raises_refused_with_the_attempts(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    target = await refusing(start_app, upstream)
    async with AsyncRouterClient(target) as client:
        with pytest.raises(RefusedError) as info:
            await client.route(HI, timeout=20)
    assert_refused(info.value)


async def test_blocking_client_raises_refused_with_the_attempts(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    target = await refusing(start_app, upstream)

    def call() -> RefusedError:
        with RouterClient(target) as client, pytest.raises(RefusedError) as info:
            client.route(HI, timeout=20)
        return info.value

    assert_refused(await asyncio.to_thread(call))


async def test_cli_route_says_a_provider_refused(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    target = await refusing(start_app, upstream)
    result = await asyncio.to_thread(run_command, "route", "--target", target, "hi")
    assert result.returncode == 1
    assert "error: PERMISSION_DENIED: a provider refused" in result.stderr
    assert f"{CLAUDE}: rejected safety_refusal" in result.stderr
