"""A server for hostile input: chain ``default`` = [main, normal], chain ``other`` = [other].

``hostile(...)`` starts it (real grpc.aio server on port 0, real providers, a FakeUpstream
whose answers each test chooses per model), and ``Hostile.route`` sends one call while two
bystanders (a health Check, a Route on chain ``other``) keep calling, recording the slowest
reply each saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llm_router.v1 import router_pb2
from llm_router_server.errors import InvalidRequestError
from llm_router_server.routing.validation.offload import ValidationPolicy
from llm_router_server.types import ModelSpec, RouteEvent
from tests.support.server import Running, Serve
from tests.support.upstream import Answer, Behaviour, FakeUpstream

BYSTANDER_LIMIT_S = 0.1
"""What a health Check or a call on another chain takes (median) while hostile input is judged."""
BYSTANDER_WORST_S = 1.0
"""The slowest one: a scheduler's hiccup on a busy 2-core machine reaches 0.1-0.3 s, a loop held
by the judging (before the worker pool) 2.5 s to minutes."""


@dataclass
class Outcome:
    """One hostile call as the caller and the bystanders saw it."""

    code: grpc.StatusCode
    reply: router_pb2.RouteResponse | None
    details: str
    failure: router_pb2.RouteFailure | None
    seconds: float
    health_worst: float
    other_worst: float
    health_median: float
    other_median: float
    events: list[RouteEvent]

    @property
    def attempts(self) -> list[router_pb2.Attempt]:
        if self.reply is not None:
            return list(self.reply.attempts)
        return list(self.failure.attempts) if self.failure is not None else []


@dataclass
class Hostile:
    running: Running
    up: FakeUpstream
    answers: dict[str, str] = field(default_factory=dict)
    events: list[RouteEvent] = field(default_factory=list)

    def chat_models(self) -> list[str]:
        """The models the upstream was asked, in order."""
        return [r.body["model"] for r in self.up.chat_requests() if isinstance(r.body, dict)]

    async def route(self, schema: Any, main: str = "{}", normal: str = "{}") -> Outcome:
        """Route with ``schema`` (a str as is, else JSON) on chain default, where ``main``
        answers ``main`` and ``normal`` answers ``normal``."""
        self.answers.update({"main": main, "normal": normal})
        text = schema if isinstance(schema, str) else json.dumps(schema)
        request = router_pb2.RouteRequest(
            messages=[router_pb2.Message(role="user", content="go")], schema=text
        )
        first_event = len(self.events)
        stop = asyncio.Event()
        health = health_pb2_grpc.HealthStub(self.running.channel)
        other = router_pb2.RouteRequest(
            messages=[router_pb2.Message(role="user", content="hello")], chain="other"
        )
        watchers = [
            asyncio.ensure_future(
                _bystander(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=30), stop)
            ),
            asyncio.ensure_future(
                _bystander(lambda: self.running.stub.Route(other, timeout=30), stop)
            ),
        ]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        reply, failure, details, code = None, None, "", grpc.StatusCode.OK
        try:
            reply = await self.running.stub.Route(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
            failure = _failure(exc)
        seconds = time.perf_counter() - started
        stop.set()
        health, others = await asyncio.gather(*watchers)
        await asyncio.sleep(0.01)  # the call's event is published as the call ends
        events = [e for e in self.events[first_event:] if e.chain == "default"]
        return Outcome(
            code, reply, details, failure, seconds,
            max(health), max(others), statistics.median(health), statistics.median(others),
            events,
        )  # fmt: skip


def _failure(exc: grpc.aio.AioRpcError) -> router_pb2.RouteFailure | None:
    from grpc_status import rpc_status

    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        failure = router_pb2.RouteFailure()
        if detail.Unpack(failure):
            return failure
    return None


async def _bystander(call: Callable[[], Awaitable[Any]], stop: asyncio.Event) -> list[float]:
    """The latency of each call made until ``stop`` (at least one)."""
    seconds: list[float] = []
    while not stop.is_set() or not seconds:
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return seconds


StartHostile = Callable[..., Awaitable[Hostile]]


@pytest.fixture
async def hostile(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> AsyncIterator[StartHostile]:
    async def start(**config: Any) -> Hostile:
        up = upstream()
        answers: dict[str, str] = {}

        def choose(path: str, body: Any) -> Behaviour | None:
            if not isinstance(body, dict) or "messages" not in body:
                return None
            return Answer(answers.get(str(body.get("model")), '{"ok": true}'))

        up.choose = choose

        def model(name: str) -> ModelSpec:
            return ModelSpec(f"ollama_chat/{name}", timeout=20, api_base=up.url)

        # Generous by default (a loaded machine is slow); tests of the budget set their own.
        config.setdefault("validation", ValidationPolicy(answer_budget_ms=10_000))
        running = await serve([model("main"), model("normal")], chains={"other": [model("other")]},
                              **config)  # fmt: skip
        found = Hostile(running, up, answers)
        running.app.bus.observe(found.events.append)
        # The workers start with the server: wait for them, so no test times a cold start.
        # With a tiny schema budget (the test of that budget) the warm-up itself may run out.
        with contextlib.suppress(InvalidRequestError):
            await running.app.router.validation.check_schema('{"type": "object"}')
        return found

    yield start
