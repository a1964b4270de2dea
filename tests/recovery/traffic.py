"""Traffic through a running server during a local model's outage, and what the fake saw.

``drive`` keeps ``callers`` Route calls going (each caller sends its next call as soon as
the last one is answered, after ``pause``) until a given time, and records for each call
when it was sent and answered and which model answered. ``is_probe`` tells the router's
background probes (a token limit of 1) from callers' calls at the fake.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

import grpc

from llm_router.v1 import router_pb2
from tests.support.server import Running
from tests.support.upstream import FakeUpstream, Recorded


@dataclass(frozen=True)
class Served:
    """One Route call of the traffic."""

    sent: float
    """``time.monotonic()`` when it was sent."""
    seconds: float
    """Time to its answer (or error)."""
    model: str
    """The model that answered; "" when the call failed."""
    first: Any
    """Its first attempt (``router_pb2.Attempt``), None when it failed."""

    @property
    def local(self) -> bool:
        return self.first is not None and self.model == self.first.model


async def drive(
    server: Running, until: float, *, callers: int = 1, pause: float = 0.05
) -> list[Served]:
    """Route calls from ``callers`` concurrent callers until ``time.monotonic() >= until``."""
    served: list[Served] = []

    async def caller() -> None:
        while time.monotonic() < until:
            sent = time.monotonic()
            request = router_pb2.RouteRequest(
                messages=[router_pb2.Message(role="user", content="What now?")]
            )
            try:
                reply = await server.stub.Route(request, timeout=30)
                served.append(
                    Served(sent, time.monotonic() - sent, reply.model_used, reply.attempts[0])
                )
            except grpc.aio.AioRpcError:
                served.append(Served(sent, time.monotonic() - sent, "", None))
            await asyncio.sleep(pause)

    await asyncio.gather(*(caller() for _ in range(callers)))
    return sorted(served, key=lambda s: s.sent)


def is_probe(recorded: Recorded) -> bool:
    """A background probe: a model call with a token limit of 1."""
    body = recorded.body if isinstance(recorded.body, dict) else {}
    options = body.get("options") if isinstance(body.get("options"), dict) else {}
    return 1 in (body.get("max_tokens"), options.get("num_predict"))


def probes(up: FakeUpstream, since: float = 0.0, before: float = float("inf")) -> list[float]:
    """Arrival times of the background probes ``up`` saw in [since, before)."""
    return [r.at for r in up.chat_requests() if is_probe(r) and since <= r.at < before]


def calls(up: FakeUpstream) -> list[Recorded]:
    """The callers' calls ``up`` saw (not the probes)."""
    return [r for r in up.chat_requests() if not is_probe(r)]


def back_after(served: list[Served], recovered: float) -> float:
    """Seconds from the recovery to the first call answered by the local model (sent after
    the recovery), measured at its answer."""
    first = next(s for s in served if s.sent >= recovered and s.local)
    return first.sent + first.seconds - recovered


def median(values: list[float]) -> float:
    return statistics.median(values)
