"""Fault injection at the wire: a real server, real litellm, and fake providers that fail in
every way the error classes name. Each scenario asserts bounded wall time, bounded attempts on
the failing model, an answer or a clear status, and a healthy server afterwards.

Per-scenario wall time, attempts on the failing model and outcome are written to
``bench/out/fault_injection.json`` (untracked; printed with ``-s``). A run worth keeping is
copied to ``bench/results/`` by hand.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2

from llm_router.v1 import router_pb2
from llm_router_server.config.model import BreakerPolicy
from tests.support.checkout import ROOT
from tests.support.fixtures import Upstream
from tests.support.server import Running, Serve, anthropic, ollama, openai
from tests.support.upstream import (
    Answer,
    Behaviour,
    Drop,
    FakeUpstream,
    Hang,
    HttpError,
    Malformed,
    SafetyRefusal,
    Slow,
    Truncated,
)
from tests.support.wire import ANTHROPIC_TOO_LONG, OPENAI_POLICY

pytestmark = pytest.mark.timeout(60)
RESULTS = ROOT / "bench" / "out" / "fault_injection.json"
# Background probes every 0.5 s, as often as the live probes of the cool-down would come.
BREAKER = BreakerPolicy(
    failure_threshold=3,
    cool_down_seconds=0.5,
    max_cool_down_seconds=1.0,
    probe_interval_seconds=0.5,
)


@dataclass
class Row:
    scenario: str
    calls: int
    wall_ms: float
    attempts_on_failing_model: int
    outcome: str


ROWS: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not ROWS:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([asdict(r) for r in ROWS], indent=1) + "\n")
    print(f"\n{'scenario':44} {'calls':>5} {'wall ms':>8} {'failing-model attempts':>22}  outcome")
    for r in ROWS:
        print(
            f"{r.scenario:44} {r.calls:5d} {r.wall_ms:8.0f} "
            f"{r.attempts_on_failing_model:22d}  {r.outcome}"
        )


@dataclass
class Setup:
    server: Running
    primary: FakeUpstream
    fallback: FakeUpstream


LONG = BreakerPolicy(failure_threshold=3, cool_down_seconds=60)
"""For scenarios that check the circuit stays open over their calls."""
PRIMARY_TIMEOUT = 1.0


@pytest.fixture
def breaker() -> BreakerPolicy:
    return BREAKER


@pytest.fixture
async def setup(serve: Serve, upstream: Upstream, breaker: BreakerPolicy) -> AsyncIterator[Setup]:
    primary = upstream(Answer("from the primary"))
    fallback = upstream(Answer("from the fallback", prompt_tokens=21, completion_tokens=4))
    server = await serve(
        [ollama(primary, timeout=PRIMARY_TIMEOUT), anthropic(fallback, timeout=5)],
        breaker=breaker,
    )
    # One call first: the process's first litellm call is slow (lazy imports), which
    # would read as a timeout of the primary.
    await server.route()
    with primary._lock:
        primary.requests.clear()
    yield Setup(server, primary, fallback)
    await assert_healthy(server)


async def assert_healthy(server: Running) -> None:
    reply = await server.health()
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    answer = await server.stub.Route(
        router_pb2.RouteRequest(messages=[router_pb2.Message(role="user", content="still up?")]),
        timeout=10,
    )
    assert answer.model_used


async def calls(s: Setup, n: int, scenario: str, **fields: str) -> list[router_pb2.RouteResponse]:
    """n sequential Route calls; records the scenario's row."""
    started = time.monotonic()
    replies = [await s.server.route(**fields) for _ in range(n)]
    wall = (time.monotonic() - started) * 1000
    outcome = ", ".join(sorted({r.model_used.split("/")[0] for r in replies}))
    ROWS.append(Row(scenario, n, round(wall), len(s.primary.chat_requests()), f"OK via {outcome}"))
    return replies


def categories(reply: router_pb2.RouteResponse) -> list[str]:
    return [router_pb2.ReasonCategory.Name(a.reason_category)[16:] for a in reply.attempts]


@pytest.mark.parametrize(
    ("name", "fault", "category", "threshold"),
    [
        ("503 persistent", HttpError(503), "PROVIDER_ERROR", 3),
        ("500 persistent", HttpError(500), "PROVIDER_ERROR", 3),
        ("reset before headers", Drop(), "PROVIDER_ERROR", 3),
        # No answer for the whole timeout opens at once (a hang: ProviderHangError).
        ("silent upstream (hang)", Hang(), "TIMEOUT", 1),
        ("slow body past the timeout", Slow(3, Answer("late")), "TIMEOUT", 1),
        ("truncated body", Truncated(), "PROVIDER_ERROR", 3),
        ("malformed JSON", Malformed(), "PROVIDER_ERROR", 3),
        (
            "429 with Retry-After: 30",
            HttpError(429, headers={"Retry-After": "30"}),
            "RATE_LIMITED",
            1,
        ),
        ("429 without Retry-After", HttpError(429), "RATE_LIMITED", 1),
        ("401 bad key", HttpError(401), "AUTHENTICATION", 1),
    ],
)
@pytest.mark.parametrize("breaker", [LONG])
async def test_a_failing_primary_is_served_by_the_fallback_and_soon_skipped(
    setup: Setup, name: str, fault: Behaviour, category: str, threshold: int
) -> None:
    setup.primary.default = fault
    started = time.monotonic()
    replies = await calls(setup, 8, name)
    # The failing model costs at most its timeout, and only until its circuit opens.
    assert time.monotonic() - started < threshold * PRIMARY_TIMEOUT + 8 * 1.0
    assert all(r.model_used.startswith("anthropic/") for r in replies)
    assert categories(replies[0])[0] == category
    assert len(setup.primary.chat_requests()) == threshold  # then the circuit is open
    assert categories(replies[-1]) == ["CIRCUIT_OPEN", "UNSPECIFIED"]
    assert replies[-1].attempts[0].outcome == router_pb2.ATTEMPT_OUTCOME_SKIPPED
    assert replies[-1].attempts[0].latency_ms == 0  # a skipped model costs nothing


async def test_429_retry_after_sets_the_cool_down(setup: Setup) -> None:
    setup.primary.script(HttpError(429, headers={"Retry-After": "1"}))
    await calls(setup, 1, "429 Retry-After: 1, then healthy")
    reply = await setup.server.route()
    assert categories(reply)[0] == "CIRCUIT_OPEN"
    await asyncio.sleep(1.1)
    assert (await setup.server.route()).model_used.startswith("ollama")
    assert len(setup.primary.chat_requests()) == 2


async def test_500_once_then_healthy_stays_on_the_primary(setup: Setup) -> None:
    setup.primary.script(HttpError(500))
    replies = await calls(setup, 4, "500 once, then healthy")
    assert replies[0].model_used.startswith("anthropic/")
    assert all(r.model_used.startswith("ollama") for r in replies[1:])
    assert len(setup.primary.chat_requests()) == 4


async def test_slow_body_within_the_timeout_is_answered(setup: Setup) -> None:
    setup.primary.default = Slow(0.2, Answer("slow but fine"))
    replies = await calls(setup, 3, "slow body within the timeout")
    assert all(r.raw_text == "slow but fine" for r in replies)


async def test_context_window_goes_to_the_next_model_without_retry_or_open(setup: Setup) -> None:
    setup.primary.default = HttpError(400, body=ANTHROPIC_TOO_LONG)
    server = setup.server
    # the context-length body is Anthropic's: serve the primary on the Anthropic protocol
    chain = [anthropic(setup.primary, timeout=0.5), anthropic(setup.fallback)]
    server.app.router.chains["default"] = type(server.app.router.chains["default"])(
        "default", tuple(chain)
    )
    replies = await calls(setup, 5, "context-length 400")
    assert all(categories(r) == ["CONTEXT_WINDOW", "UNSPECIFIED"] for r in replies)
    assert len(setup.primary.chat_requests()) == 5  # one per call, never retried, never opened


@pytest.mark.parametrize("policy", ["fall_through", "stop"])
async def test_content_policy_400_follows_the_refusal_policy(
    serve: Serve, upstream: Upstream, policy: str
) -> None:
    primary = upstream(HttpError(400, body=OPENAI_POLICY))
    fallback = upstream(Answer("from the fallback"))
    server = await serve([openai(primary), anthropic(fallback)], breaker=BREAKER)
    chain = server.app.router.chains["default"]
    server.app.router.chains["default"] = type(chain)("default", chain.models, 0, policy)
    started = time.monotonic()
    if policy == "fall_through":
        reply = await server.route()
        assert categories(reply) == ["SAFETY_REFUSAL", "UNSPECIFIED"]
        outcome = "OK via anthropic"
    else:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await server.route()
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "refusal_policy 'stop'" in (info.value.details() or "")
        assert fallback.chat_requests() == []
        outcome = "PERMISSION_DENIED"
        primary.default = Answer("fine again")
    ROWS.append(
        Row(f"content-policy 400 ({policy})", 1, round((time.monotonic() - started) * 1000),
            len(primary.chat_requests()), outcome)
    )  # fmt: skip
    await assert_healthy(server)


async def test_claude_safety_refusal_under_stop(serve: Serve, upstream: Upstream) -> None:
    primary, fallback = upstream(SafetyRefusal()), upstream()
    server = await serve([anthropic(primary), anthropic(fallback)])
    chain = server.app.router.chains["default"]
    server.app.router.chains["default"] = type(chain)("default", chain.models, 0, "stop")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await server.route()
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_primary_down_for_a_while_then_back(setup: Setup) -> None:
    """Many requests over time: the fallback serves the outage; soon after the primary
    recovers it serves again, after few probes."""
    setup.primary.default = HttpError(503)
    served: list[tuple[float, str]] = []
    started = time.monotonic()
    recovered_at = started + 2.0
    during_outage = -1
    while time.monotonic() - started < 4.0:
        if time.monotonic() >= recovered_at and during_outage < 0:
            setup.primary.default = Answer("back")
            during_outage = len(setup.primary.chat_requests())
        reply = await setup.server.route()
        served.append((time.monotonic() - started, reply.model_used.split("/")[0]))
        await asyncio.sleep(0.05)
    wall = time.monotonic() - started
    during = [m for t, m in served if t < 2.0]
    assert all(m == "anthropic" for m in during[1:])  # each call answered, by the fallback
    back = next(t for t, m in served if t >= 2.0 and m.startswith("ollama"))
    assert back - 2.0 <= BREAKER.max_cool_down_seconds + 0.5
    assert all(m.startswith("ollama") for t, m in served if t > back)
    # 3 to open, then one probe per cool-down (0.5 s, doubling, capped at 1 s) over 2 s.
    assert during_outage <= 3 + 4
    ROWS.append(
        Row("primary down 2 s then back", len(served), round(wall * 1000), during_outage,
            f"OK; fallback during outage ({during_outage} primary attempts incl. probes), "
            f"primary again {back - 2.0:.2f}s after recovery")
    )  # fmt: skip


async def test_fallback_accounting(setup: Setup) -> None:
    setup.primary.default = HttpError(503)
    replies = await calls(setup, 2, "fallback accounting")
    reply = replies[0]
    assert reply.model_used == "anthropic/claude-haiku-4-5-20251001"
    assert reply.attempts[-1].usage.prompt_tokens == 21
    assert not reply.attempts[0].HasField("usage")
    counters = setup.server.app.router.counters.snapshot()
    # success 1: the fixture's first call; the two failed attempts are fallbacks, not completions
    assert counters["ollama_chat/qwen2.5:7b"] == {"success": 1, "fallback": 2, "error": 0}
    assert counters["anthropic/claude-haiku-4-5-20251001"]["success"] == 2


async def test_everything_down_is_a_clear_error_and_bounded(setup: Setup) -> None:
    setup.primary.default = HttpError(503)
    setup.fallback.default = Drop()
    started = time.monotonic()
    codes = []
    for _ in range(6):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await setup.server.route()
        codes.append(info.value.code())
    wall = time.monotonic() - started
    assert set(codes) == {grpc.StatusCode.UNAVAILABLE}
    assert "all 2 models" in (info.value.details() or "") or "circuit" in (
        info.value.details() or ""
    )
    # 3 calls open both circuits; after that each call tries one model as the last resort.
    tried = len(setup.primary.chat_requests()) + len(setup.fallback.chat_requests())
    assert tried <= 3 * 2 + 3
    assert len(setup.primary.chat_requests()) <= 3 + 2
    ROWS.append(
        Row("every model down", 6, round(wall * 1000), len(setup.primary.chat_requests()),
            "UNAVAILABLE with RouteFailure")
    )  # fmt: skip
    setup.fallback.default = Answer("recovered")
    setup.primary.default = Answer("recovered")
    await asyncio.sleep(BREAKER.max_cool_down_seconds + 0.1)


async def test_hedging_cancels_the_loser_upstream(serve: Serve, upstream: Upstream) -> None:
    primary, fallback = upstream(Hang()), upstream(Answer("hedged"))
    server = await serve([ollama(primary, timeout=5), anthropic(fallback)])
    chain = server.app.router.chains["default"]
    server.app.router.chains["default"] = type(chain)("default", chain.models, 100.0)
    started = time.monotonic()
    reply = await server.route()
    wall = time.monotonic() - started
    assert reply.raw_text == "hedged" and wall < 2.5
    assert categories(reply) == ["CANCELLED", "UNSPECIFIED"]
    assert reply.attempts[0].reason == "another model answered first"
    assert await primary.wait_for_disconnects(1, 3.0)
    ROWS.append(
        Row(
            "hedge after 100 ms, primary silent",
            1,
            round(wall * 1000),
            1,
            "OK via anthropic (hedge)",
        )
    )
    await assert_healthy(server)
