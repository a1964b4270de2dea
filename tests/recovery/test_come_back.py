"""Coming back to the local model after an outage, at the wire, with the default breaker.

The first model of the chain is a fake that fails for a while (HTTP 503, or holds every
request silently) and then is healthy again; the second answers. The router serves the
outage from the second model, probes the first in the background, and sends calls to it
again within seconds of its recovery, whatever its protocol.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

from llm_router.v1 import router_pb2
from llm_router_server.types import ModelSpec
from tests.recovery.traffic import back_after, calls, drive, median, probes
from tests.support.server import Serve, anthropic, ollama, openai
from tests.support.upstream import Answer, FakeUpstream, Hang, HttpError, Slow

pytestmark = pytest.mark.timeout(60)

FIRST: dict[str, Callable[..., ModelSpec]] = {
    "ollama": ollama,
    "openai": openai,
    "anthropic": anthropic,
}
INTERVAL = 1.0
"""The default ``breaker.probe_interval_seconds``."""
SKIPPED = router_pb2.ATTEMPT_OUTCOME_SKIPPED


def cloud(up: FakeUpstream) -> ModelSpec:
    """The fallback: another model string than any first model, on its own fake."""
    up.default = Answer("from the cloud")
    return ModelSpec("anthropic/claude-sonnet-4-6", timeout=5.0, api_base=up.url)


@pytest.mark.parametrize("protocol", list(FIRST))
async def test_after_a_503_outage_calls_come_back_within_two_seconds(
    serve: Serve, upstream: Callable[[], FakeUpstream], protocol: str
) -> None:
    local, fallback = upstream(), upstream()
    server = await serve([FIRST[protocol](local), cloud(fallback)])
    recovered = local.outage(HttpError(503), 3.0)
    served = await drive(server, recovered + 3.0)

    assert all(s.model for s in served), "every call is answered"
    during = [s for s in served if s.sent < recovered]
    assert not any(s.local for s in during)
    later = [s for s in served if s.sent >= recovered + 2.0]
    assert later and all(s.local for s in later), "calls sent 2 s after recovery stay local"
    assert back_after(served, recovered) <= 2.0
    # Three calls opened the circuit; after that a call pays nothing for the local model.
    assert len([r for r in calls(local) if r.at < recovered]) == 3
    skipped = [s for s in during if s.first.outcome == SKIPPED]
    assert skipped and all(s.first.latency_ms == 0 for s in skipped)
    assert all(s.seconds < 1.0 for s in during)
    # One probe per interval while it is open.
    seen = probes(local, before=recovered)
    assert 1 <= len(seen) <= 3.0 / INTERVAL + 1
    assert all(later - earlier >= 0.8 * INTERVAL for earlier, later in pairwise(seen))


async def test_probes_stop_when_the_circuit_closes(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, fallback = upstream(), upstream()
    server = await serve([ollama(local), cloud(fallback)])
    recovered = local.outage(HttpError(503), 2.0)
    served = await drive(server, recovered + 2.0)
    assert served[-1].local
    sent = len(probes(local))
    assert sent >= 1
    await asyncio.sleep(2.5 * INTERVAL)
    assert len(probes(local)) == sent
    assert server.app.prober.sent["ollama_chat/qwen2.5:7b"] == sent


async def test_a_hanging_local_model_costs_a_call_at_most_half_its_timeout(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """Three callers: their first calls count as failures at half the timeout, which opens
    the circuit and cuts them short; later calls skip the model until a probe answers."""
    local, fallback = upstream(), upstream()
    timeout = 2.0
    server = await serve([ollama(local, timeout=timeout), cloud(fallback)])
    recovered = local.outage(Hang(), 4.0)
    served = await drive(server, recovered + 3.0, callers=3)

    assert all(s.model for s in served), "every call is answered"
    during = [s for s in served if s.sent < recovered]
    assert median([s.seconds for s in during]) <= timeout / 2
    assert max(s.seconds for s in during) < 0.5 * timeout + 0.5  # nobody waits the timeout
    assert len([r for r in calls(local) if r.at < recovered]) == 3
    cut = [s for s in during if s.first.reason.startswith("cut short")]
    assert len(cut) == 3
    assert all(router_pb2.ReasonCategory.Name(s.first.reason_category) == "REASON_CATEGORY_TIMEOUT"
               for s in cut)  # fmt: skip
    assert back_after(served, recovered) <= 2.0
    later = [s for s in served if s.sent >= recovered + 2.0]
    assert later and all(s.local for s in later)
    # Probes that got no answer are cancelled once one answered: none is left waiting.
    hung = len(probes(local, before=recovered))
    assert 2 <= hung <= 4.0 / INTERVAL + 1
    assert await local.wait_for_disconnects(3 + hung, 3.0)


async def test_a_single_caller_waits_for_a_hanging_model_once(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """One call at a time: the first waits the whole timeout, which opens the circuit at
    once (a hang); every later call during the outage skips the model."""
    local, fallback = upstream(), upstream()
    timeout = 1.5
    server = await serve([ollama(local, timeout=timeout), cloud(fallback)])
    recovered = local.outage(Hang(), 3.5)
    served = await drive(server, recovered + 2.5)

    during = [s for s in served if s.sent < recovered]
    assert timeout <= during[0].seconds < timeout + 0.5
    assert all(s.first.outcome == SKIPPED and s.seconds < 0.5 for s in during[1:])
    assert median([s.seconds for s in during]) <= timeout / 2
    assert len([r for r in calls(local) if r.at < recovered]) == 1
    assert back_after(served, recovered) <= 2.0


async def test_a_model_probed_live_gets_no_background_probe(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, fallback = upstream(), upstream()
    server = await serve([ollama(local, probe="live"), cloud(fallback)])
    local.default = HttpError(503)
    await drive(server, time.monotonic() + 2.5)
    assert probes(local) == []
    assert len(calls(local)) == 3  # then open for the 30 s cool-down


async def test_after_a_rate_limit_auto_waits_for_the_retry_after_without_probing(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, fallback = upstream(), upstream()
    server = await serve([ollama(local), cloud(fallback)])
    local.script(HttpError(429, headers={"Retry-After": "2"}))
    started = time.monotonic()
    served = await drive(server, started + 3.0)
    assert probes(local) == []
    assert not any(s.local for s in served if s.sent < started + 1.9)
    assert served[-1].local  # a live call after the Retry-After closed it


async def test_a_probe_answered_without_text_closes_the_circuit(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """A thinking model's one token goes to its thinking: no text, but it answered."""
    local, fallback = upstream(), upstream()

    def empty_for_probes(path: str, body: Any) -> Answer | None:
        options = body.get("options", {}) if isinstance(body, dict) else {}
        return Answer("") if options.get("num_predict") == 1 else None

    local.choose = empty_for_probes
    server = await serve([ollama(local), cloud(fallback)])
    recovered = local.outage(HttpError(503), 1.5)
    served = await drive(server, recovered + 2.5)
    assert back_after(served, recovered) <= 2.0


async def test_the_last_model_of_a_chain_is_never_cut_short(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """Slow answers (past half the timeout) from three callers open the circuit of a chain's
    only model, but the calls waiting on it keep waiting: nothing else would answer them.
    Their answers close the circuit again."""
    local = upstream()
    local.default = Slow(1.3, Answer("slow but fine"))
    server = await serve([ollama(local, timeout=2.0)])
    replies = await asyncio.gather(*(server.route() for _ in range(3)))
    assert all(r.raw_text == "slow but fine" for r in replies)
    assert server.app.router.breaker.transitions[("ollama_chat/qwen2.5:7b", "open")] == 1
    assert (await server.route()).raw_text == "slow but fine"
