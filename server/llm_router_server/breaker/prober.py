"""Background probes: while a circuit is open, the router itself finds out when its model
answers again, and closes the circuit at once.

A probe is the smallest real generation: one short user turn and a token limit of 1
(``max_tokens``, or ``max_completion_tokens`` when the model's params use that), sent
through the same provider, path and params as the model's calls, with no schema. It
shows that the model answers, not only that its server is up (Ollama's ``/api/version``
answers while a model hangs); a model that answers with no text at all (a thinking
model's one token goes to its thinking) counts as answering. It costs one output token.

Timing (``breaker.probe_interval_seconds``, default 1 s): a probe may start once per
interval per circuit, the first one interval after the circuit opened. The slot is
claimed in the breaker's store (``CircuitBreaker.claim_probe``, an atomic update), so
replicas sharing a Redis store send one probe per interval between them, not one each.
Each probe waits up to the model's own timeout (a model that is loading can answer),
and a new one starts every interval even while an earlier one still waits, so a model
that comes back from a silent outage is found within about one interval. The first
probe that gets an answer closes the circuit; the others still waiting are cancelled,
as they are when the circuit closes otherwise and on shutdown.

Which models: those whose ``probe`` mode is not ``live``; in ``auto`` mode not after
the provider's own word (a rate limit, a refused key: ``rules.probes_in_background``).
The prober sleeps while every circuit is closed and wakes when one is seen open
(``CircuitBreaker.on_open``); it reads the store once per interval while one is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable

from llm_router_server.breaker.breaker import CircuitBreaker
from llm_router_server.breaker.rules import State, key_of, probes_in_background
from llm_router_server.breaker.store import BreakerStoreError
from llm_router_server.errors import (
    ProviderEmptyAnswerError,
    ProviderError,
    ProviderTimeoutError,
)
from llm_router_server.providers.base import Provider
from llm_router_server.types import CompletionRequest, Message, ModelSpec

logger = logging.getLogger("llm_router.breaker")

PROBE_MESSAGES = (Message("user", "Reply with OK."),)


def probe_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` with a token limit of 1 (the key its params already use, else max_tokens)."""
    limit = "max_completion_tokens" if "max_completion_tokens" in spec.params else "max_tokens"
    return dataclasses.replace(spec, params={**spec.params, limit: 1})


@dataclasses.dataclass
class _Target:
    spec: ModelSpec
    probe: ModelSpec
    """The spec probes are sent with (kept: the native path caches its endpoint per spec)."""
    running: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)


class Prober:
    """Probes the open circuits of ``specs`` in the background (see the module)."""

    def __init__(
        self, breaker: CircuitBreaker, provider: Provider, specs: Iterable[ModelSpec]
    ) -> None:
        self.breaker = breaker
        self.provider = provider
        self.interval = breaker.policy.probe_interval_seconds
        self.targets: dict[str, _Target] = {}
        for spec in specs:
            if spec.probe != "live":
                self.targets.setdefault(key_of(spec), _Target(spec, probe_spec(spec)))
        self.sent: Counter[str] = Counter()
        """Model -> probes sent by this replica."""
        self._watching: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start probing (nothing to do without targets or with the breaker off)."""
        if self._task is not None or not self.targets or not self.breaker.policy.enabled:
            return
        self.breaker.probing = True
        self.breaker.on_open.append(self._opened)
        self._task = asyncio.create_task(self._run(), name="breaker-prober")

    async def aclose(self) -> None:
        """Stop: cancel the loop and every probe still waiting."""
        if self._task is None:
            return
        self.breaker.probing = False
        self.breaker.on_open.remove(self._opened)
        tasks = [self._task, *(t for target in self.targets.values() for t in target.running)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    def _opened(self, key: str) -> None:
        if key in self.targets and key not in self._watching:
            self._watching.add(key)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self._tick()
            except Exception:
                logger.exception("background probing failed; trying again")
                wait = self.interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _tick(self) -> float | None:
        """Probe what is due; seconds until the next probe is due (None: nothing is open)."""
        wait: float | None = None
        for key in list(self._watching):
            target = self.targets[key]
            try:
                due = await self._visit(key, target)
            except BreakerStoreError as exc:
                self.breaker.store_failed(exc)
                due = self.interval
            if due is not None:
                wait = due if wait is None else min(wait, due)
        return None if wait is None else min(max(wait, 0.01), self.interval)

    async def _visit(self, key: str, target: _Target) -> float | None:
        circuit = await self.breaker.current(target.spec)
        if circuit.state is State.CLOSED:
            self._watching.discard(key)
            self._stop(target)
            return None
        now = self.breaker.clock()
        if not probes_in_background(target.spec.probe, circuit):
            # A live call probes it after the provider's time; look again then.
            return max(circuit.open_until - now, self.interval)
        due = max(circuit.probe_until, circuit.open_until if circuit.firm else 0.0) - now
        if due > 0:
            return due
        if await self.breaker.claim_probe(target.spec):
            self.sent[target.spec.model] += 1
            task = asyncio.create_task(self._probe(target), name=f"probe {target.spec.model}")
            target.running.add(task)
            task.add_done_callback(target.running.discard)
        return self.interval

    async def _probe(self, target: _Target) -> None:
        spec = target.spec
        request = CompletionRequest(PROBE_MESSAGES, schema=None, timeout=spec.timeout)
        error: ProviderError | None = None
        try:
            async with asyncio.timeout(spec.timeout):
                await self.provider.complete(target.probe, request)
        except TimeoutError:
            error = ProviderTimeoutError(f"probe: no answer within {spec.timeout:.3g}s")
        except ProviderEmptyAnswerError:
            pass  # the model ran: it answered with no text
        except ProviderError as exc:
            error = exc
        logger.debug("probe of %s: %s", spec.model, error or "answered")
        await self.breaker.probed(spec, error)
        if error is None:
            self._stop(target, keep=asyncio.current_task())

    @staticmethod
    def _stop(target: _Target, keep: object = None) -> None:
        """Cancel the probes of ``target`` still waiting (the circuit is closed)."""
        for task in list(target.running):
            if task is not keep:
                task.cancel()
