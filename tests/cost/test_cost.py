"""Money at the wire: a real server, fake providers with known token counts, and prices from
litellm's bundled table or the configuration. Each attempt carries its cost; the reply the
call's total and the cost avoided; a model without a price, or usage not reported, is
unknown (absent), never 0."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from llm_router import AllModelsFailedError
from llm_router.v1 import router_pb2
from tests.support.net import free_port
from tests.support.processes import start_command
from tests.support.server import Serve, anthropic, ollama, openai
from tests.support.upstream import (
    Answer,
    Behaviour,
    Drop,
    FakeUpstream,
    HttpError,
    Malformed,
    Truncated,
)

pytestmark = pytest.mark.timeout(60)

# litellm's table: claude-haiku-4-5-20251001 costs $1 / $5 per million input / output tokens.
HAIKU_IN, HAIKU_OUT = 1.0, 5.0
HAIKU = "anthropic/claude-haiku-4-5-20251001"
LOCAL = "ollama_chat/qwen2.5:7b"
FREE = (0.0, 0.0)


def usd(prompt: int, completion: int, per_in: float, per_out: float) -> float:
    return round((prompt * per_in + completion * per_out) * 1000) * 1e-9


def cost(message: Any) -> float | None:
    return message.cost_usd if message.HasField("cost_usd") else None


def avoided(reply: router_pb2.RouteResponse) -> float | None:
    return reply.cost_avoided_usd if reply.HasField("cost_avoided_usd") else None


async def test_a_cloud_answer_costs_its_tokens_at_the_table_price(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.default = HttpError(503)
    cloud.default = Answer("restart it", prompt_tokens=21, completion_tokens=4)
    server = await serve([ollama(local, price_per_mtok=FREE), anthropic(cloud)])
    reply = await server.route()
    assert reply.model_used == HAIKU
    local_attempt, cloud_attempt = reply.attempts
    assert cost(local_attempt) == 0.0  # free by configuration, whatever happened
    assert cost(cloud_attempt) == pytest.approx(usd(21, 4, HAIKU_IN, HAIKU_OUT), abs=1e-12)
    assert cost(reply) == pytest.approx(4.1e-05, abs=1e-12)
    assert avoided(reply) == 0.0  # a priced model answered: nothing avoided


async def test_a_local_answer_avoids_the_first_priced_models_cost(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, middle, cloud = upstream(), upstream(), upstream()
    local.default = Answer("restart it", prompt_tokens=100, completion_tokens=20)
    # An unpriced model before the first priced one is skipped over as the reference.
    server = await serve([ollama(local, price_per_mtok=FREE), openai(middle), anthropic(cloud)])
    reply = await server.route()
    assert reply.model_used == LOCAL
    assert cost(reply.attempts[0]) == 0.0 and cost(reply) == 0.0
    assert avoided(reply) == pytest.approx(usd(100, 20, HAIKU_IN, HAIKU_OUT), abs=1e-12)
    assert avoided(reply) == pytest.approx(0.0002, abs=1e-12)
    result = await server.client.route([{"role": "user", "content": "again"}])
    assert (result.cost_usd, result.attempts[0].cost_usd) == (0.0, 0.0)
    assert result.cost_avoided_usd == pytest.approx(0.0002, abs=1e-12)


async def test_a_model_without_a_price_has_an_unknown_cost_never_zero(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    unpriced, cloud = upstream(), upstream()
    unpriced.default = Answer("restart it", prompt_tokens=10, completion_tokens=10)
    server = await serve([openai(unpriced), anthropic(cloud)])  # openai/gpt-test: no price
    reply = await server.route()
    [attempt] = reply.attempts
    assert not attempt.HasField("cost_usd") and not reply.HasField("cost_usd")
    # It answered for the priced model after it: what that one would have charged.
    assert avoided(reply) == pytest.approx(usd(10, 10, HAIKU_IN, HAIKU_OUT), abs=1e-12)
    result = await server.client.route([{"role": "user", "content": "again"}])
    assert result.cost_usd is None and result.attempts[0].cost_usd is None


async def test_without_a_priced_model_the_cost_avoided_is_unknown(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local = upstream()
    local.default = Answer("restart it")
    server = await serve([ollama(local, price_per_mtok=FREE), openai(upstream())])
    reply = await server.route()
    assert cost(reply) == 0.0 and avoided(reply) is None


async def test_a_configured_price_wins_over_the_table(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    up = upstream()
    up.default = Answer("restart it", prompt_tokens=11, completion_tokens=7)
    server = await serve([openai(up, price_per_mtok=(2.0, 8.0)), anthropic(upstream())])
    reply = await server.route()
    assert cost(reply.attempts[0]) == pytest.approx(usd(11, 7, 2.0, 8.0), abs=1e-12)
    assert cost(reply) == pytest.approx(7.8e-05, abs=1e-12)
    assert avoided(reply) == 0.0


@pytest.mark.parametrize("fault", [Drop(), Malformed(), Truncated()], ids=type)
async def test_usage_not_reported_leaves_the_cost_unknown(
    serve: Serve, upstream: Callable[[], FakeUpstream], fault: Behaviour
) -> None:
    cloud, local = upstream(), upstream()
    cloud.default = fault  # the model may have run and used tokens, but no usage came back
    local.default = Answer("restart it", prompt_tokens=5, completion_tokens=5)
    server = await serve([anthropic(cloud), ollama(local, price_per_mtok=FREE)])
    reply = await server.route()
    failed, answered = reply.attempts
    assert not failed.HasField("usage") and not failed.HasField("cost_usd")
    assert cost(answered) == 0.0
    assert not reply.HasField("cost_usd")  # one unknown attempt: the total is unknown


async def test_an_error_status_or_an_unreachable_provider_costs_nothing(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """No model ran: an HTTP error status is not billed, nor is a connection never made."""
    erring, local = upstream(), upstream()
    erring.default = HttpError(500)
    local.default = Answer("restart it", prompt_tokens=5, completion_tokens=5)
    sonnet = replace(anthropic(erring), model="anthropic/claude-sonnet-4-6")
    unreachable = replace(sonnet, api_base=f"http://127.0.0.1:{free_port()}")  # refused
    server = await serve([anthropic(erring), unreachable, ollama(local, price_per_mtok=FREE)])
    reply = await server.route()
    status, refused, answered = reply.attempts
    assert "HTTP 500" in status.reason and "connection refused" in refused.reason
    assert not status.HasField("usage") and not refused.HasField("usage")
    assert cost(status) == 0.0 and cost(refused) == 0.0 and cost(answered) == 0.0
    assert cost(reply) == 0.0


async def test_a_failed_call_carries_its_cost(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.default = HttpError(503)
    cloud.default = Answer("I cannot help with that.", prompt_tokens=30, completion_tokens=6)
    server = await serve([ollama(local, price_per_mtok=FREE), anthropic(cloud)])
    with pytest.raises(AllModelsFailedError) as raised:
        await server.client.route([{"role": "user", "content": "hi"}])
    assert raised.value.cost_usd == pytest.approx(usd(30, 6, HAIKU_IN, HAIKU_OUT), abs=1e-12)
    assert [a.cost_usd for a in raised.value.attempts] == [0.0, raised.value.cost_usd]


async def test_the_cli_prints_the_cost_and_the_cost_avoided(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local = upstream()
    local.default = Answer("restart it", prompt_tokens=100, completion_tokens=20)
    server = await serve([ollama(local, price_per_mtok=FREE), anthropic(upstream())])
    process = await start_command("route", "--target", server.target, "hi")
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert "cost $0, avoided $0.0002" in err.decode()
    process = await start_command("route", "--target", server.target, "--json", "hi")
    out, err = await asyncio.wait_for(process.communicate(), 30)
    line = json.loads(out)
    assert (line["cost_usd"], line["attempts"][0]["cost_usd"]) == (0.0, 0.0)
    assert line["cost_avoided_usd"] == pytest.approx(0.0002, abs=1e-12)
