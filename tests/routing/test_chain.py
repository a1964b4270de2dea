"""The fallback chain alone, over the in-process ScriptedProvider (no gRPC, no HTTP)."""

from __future__ import annotations

import asyncio
import json

import pytest

from llm_router_server.errors import (
    AllModelsFailedError,
    DeadlineExceededError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderRefusalError,
    ProviderStatusError,
    UnknownChainError,
)
from llm_router_server.routing.chain import Router
from llm_router_server.types import (
    Category,
    Completion,
    Deadline,
    Message,
    ModelSpec,
    Outcome,
    RouteRequest,
    RouteStatus,
    Usage,
)
from tests.support.routers import ask, build_router
from tests.support.scripted_provider import Delay, ScriptedProvider

SCHEMA = json.dumps(
    {
        "type": "object",
        "required": ["action"],
        "properties": {
            "action": {"enum": ["restart", "escalate", "wait"]},
            "note": {"type": "string"},
        },
    }
)
MODELS = (
    ModelSpec("local", timeout=1.0),
    ModelSpec("haiku", timeout=2.0),
    ModelSpec("sonnet", timeout=2.0),
)


def make_router(provider: ScriptedProvider, models: tuple[ModelSpec, ...] = MODELS) -> Router:
    """Chain ``default`` is ``models``; chain ``cloud`` is all of them but the first."""
    return build_router(provider, models, chains={"cloud": models[1:]})


async def test_first_model_answers_and_is_the_only_one_called() -> None:
    provider = ScriptedProvider({"local": [Completion("hello", Usage(3, 2, 5))]})
    result = await make_router(provider).route(ask())
    assert result.model_used == "local"
    assert result.content == "hello"
    assert [a.outcome for a in result.attempts] == [Outcome.SUCCESS]
    assert result.attempts[0].usage == Usage(3, 2, 5)
    assert [c[0] for c in provider.calls] == ["local"]


@pytest.mark.parametrize(
    ("step", "outcome", "category"),
    [
        (ProviderConnectionError("connection refused"), Outcome.REJECTED, Category.PROVIDER_ERROR),
        (
            ProviderStatusError("HTTP 503", status_code=503),
            Outcome.REJECTED,
            Category.PROVIDER_ERROR,
        ),
        (
            ProviderRefusalError("safety refusal"),
            Outcome.REJECTED,
            Category.SAFETY_REFUSAL,
        ),
        (Completion("As an AI, I cannot help."), Outcome.REJECTED, Category.REFUSAL),
        (Completion("not json at all"), Outcome.INVALID, Category.INVALID_JSON),
        (Completion('{"action": "dance"}'), Outcome.INVALID, Category.SCHEMA_MISMATCH),
        (Completion(""), Outcome.INVALID, Category.INVALID_JSON),
        (Delay(5, Completion('{"action": "wait"}')), Outcome.REJECTED, Category.TIMEOUT),
    ],
)
async def test_each_rejection_falls_through_to_the_next_model(
    step: object, outcome: Outcome, category: Category
) -> None:
    provider = ScriptedProvider({"local": [step], "haiku": [Completion('{"action": "restart"}')]})  # type: ignore[list-item]
    result = await make_router(provider).route(ask(schema=SCHEMA))
    assert result.model_used == "haiku"
    assert result.content == {"action": "restart"}
    first = result.attempts[0]
    assert (first.model, first.outcome, first.category) == ("local", outcome, category)
    assert first.reason


async def test_fenced_json_is_accepted() -> None:
    answer = 'Sure:\n```json\n{"action": "wait"}\n```\nDone.'
    provider = ScriptedProvider({"local": [Completion(answer)]})
    result = await make_router(provider).route(ask(schema=SCHEMA))
    assert result.content == {"action": "wait"}
    assert result.raw_text == answer


async def test_refusal_phrase_inside_a_valid_answer_is_not_a_refusal() -> None:
    answer = '{"action": "escalate", "note": "I can\'t restart it remotely"}'
    provider = ScriptedProvider({"local": [Completion(answer)]})
    result = await make_router(provider).route(ask(schema=SCHEMA))
    assert result.model_used == "local"
    assert result.content["note"] == "I can't restart it remotely"


async def test_refusal_in_free_text_is_rejected_case_insensitively() -> None:
    provider = ScriptedProvider(
        {"local": [Completion("Nie wiem.")], "haiku": [Completion("Restart it.")]}
    )
    result = await make_router(provider).route(ask())
    assert result.attempts[0].category is Category.REFUSAL
    assert "nie wiem" in result.attempts[0].reason.lower()
    assert result.content == "Restart it."


async def test_schema_is_sent_as_structured_output_unless_switched_off() -> None:
    models = (ModelSpec("local", 1.0, structured_output=False), ModelSpec("haiku", 1.0))
    provider = ScriptedProvider(
        {"local": [Completion("no")], "haiku": [Completion('{"action": "wait"}')]}
    )
    await make_router(provider, models).route(ask(schema=SCHEMA))
    assert provider.calls[0][1].schema is None
    assert provider.calls[1][1].schema == json.loads(SCHEMA)


async def test_all_failed_carries_every_attempt_in_order() -> None:
    provider = ScriptedProvider(
        {
            "local": [ProviderConnectionError("refused")],
            "haiku": [Completion("I cannot do that")],
            "sonnet": [Completion("{}")],
        }
    )
    with pytest.raises(AllModelsFailedError) as info:
        await make_router(provider).route(ask(schema=SCHEMA))
    assert [a.model for a in info.value.attempts] == ["local", "haiku", "sonnet"]
    assert [a.category for a in info.value.attempts] == [
        Category.PROVIDER_ERROR,
        Category.REFUSAL,
        Category.SCHEMA_MISMATCH,
    ]
    assert "local" in str(info.value) and "sonnet" in str(info.value)


async def test_deadline_caps_each_attempt_and_skips_models_it_cannot_start() -> None:
    provider = ScriptedProvider({"local": [Delay(5, Completion("late"))]})
    router = make_router(provider)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceededError) as info:
        await router.route(ask(), Deadline.after(0.3))
    assert loop.time() - started < 1.0
    attempts = info.value.attempts
    assert attempts[0].category is Category.TIMEOUT
    assert "deadline" in attempts[0].reason
    assert [a.outcome for a in attempts[1:]] == [Outcome.SKIPPED, Outcome.SKIPPED]
    assert [c[0] for c in provider.calls] == ["local"]
    assert provider.calls[0][1].timeout == pytest.approx(0.3, abs=0.05)


async def test_model_timeout_applies_when_the_deadline_is_further() -> None:
    provider = ScriptedProvider(
        {"local": [Delay(5, Completion("late"))], "haiku": [Completion("ok")]}
    )
    result = await make_router(provider).route(ask(), Deadline.after(10))
    assert result.attempts[0].category is Category.TIMEOUT
    assert 900 <= result.attempts[0].latency_ms < 1500
    assert result.model_used == "haiku"


async def test_cancellation_reaches_the_provider_and_still_publishes_an_event() -> None:
    provider = ScriptedProvider({"local": [Delay(5, Completion("late"))]})
    router = make_router(provider)
    watcher = router.bus.subscribe()
    task = asyncio.create_task(router.route(ask(context="job-7")))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.cancelled == ["local"]
    event = watcher._queue.get_nowait()
    assert event.status is RouteStatus.CANCELLED
    assert event.context == "job-7"
    assert event.attempts[0].category is Category.CANCELLED


async def test_every_call_publishes_one_event_and_counts_like_the_seed() -> None:
    provider = ScriptedProvider(
        {
            "local": [ProviderConnectionError("down"), Completion("fine")],
            "haiku": [Completion("ok")],
        }
    )
    router = make_router(provider)
    watcher = router.bus.subscribe()
    await router.route(ask())
    await router.route(ask())
    assert watcher._queue.qsize() == 2
    assert router.counters.snapshot() == {
        "haiku": {"success": 1, "fallback": 0, "error": 0},
        "local": {"success": 1, "fallback": 1, "error": 0},
    }


async def test_last_rejected_attempt_counts_as_error() -> None:
    provider = ScriptedProvider({}, default=Completion("I am unable to"))
    router = make_router(provider)
    with pytest.raises(AllModelsFailedError):
        await router.route(ask())
    snapshot = router.counters.snapshot()
    assert snapshot["local"]["fallback"] == 1
    assert snapshot["sonnet"]["error"] == 1


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (RouteRequest(messages=()), "messages is empty"),
        (RouteRequest(messages=(Message("robot", "hi"),)), "messages[0].role is 'robot'"),
        (RouteRequest(messages=(Message("user", "  "),)), "messages[0].content is empty"),
        (ask(schema="{not json"), "schema is not valid JSON"),
        (ask(schema="[1, 2]"), "schema must be a JSON object"),
        (ask(schema='{"type": "no-such-type"}'), "schema is not a valid JSON Schema"),
        (ask(chain="nope"), "unknown chain 'nope'"),
    ],
)
async def test_bad_requests_are_rejected_before_any_model_is_called(
    request_: RouteRequest, message: str
) -> None:
    provider = ScriptedProvider(default=Completion("ok"))
    with pytest.raises(InvalidRequestError) as info:
        await make_router(provider).route(request_)
    assert message in str(info.value)
    assert provider.calls == []


async def test_unknown_chain_lists_the_configured_ones() -> None:
    with pytest.raises(UnknownChainError, match="cloud, default"):
        await make_router(ScriptedProvider()).route(ask(chain="x"))


async def test_named_chain_is_used() -> None:
    provider = ScriptedProvider(default=Completion("ok"))
    result = await make_router(provider).route(ask(chain="cloud"))
    assert result.chain == "cloud"
    assert result.model_used == "haiku"
