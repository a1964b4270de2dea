"""Circuit breakers: one per model (model string + api_base), closed / open / half-open.

A model whose calls keep failing is skipped for a cool-down instead of making
every request pay its timeout; after the cool-down one probe call at a time is
let through (half-open) and its success closes the circuit again.

The rules, per circuit (``BreakerPolicy`` holds the numbers):

- closed: calls go through. ``failure_threshold`` consecutive failures open it;
  a rate limit (429) or an authentication error opens it at once. A rate limit
  stays open for the provider's ``Retry-After`` (capped by ``max_cool_down``),
  anything else for ``cool_down``.
- open: calls are skipped (``Category.CIRCUIT_OPEN``) until the cool-down ends.
- half-open: one call is let through as a probe, holding a lease for the
  model's timeout; others are skipped meanwhile. A success closes the circuit;
  a failure opens it again for twice the last cool-down (or the new
  Retry-After), capped. A lease that
  is never reported (the probe's caller vanished) expires, and the next call
  probes.

What counts (``fault_of``) is what each error class says it means
(``ProviderError.breaker_effect``, drawn in ``errors.py``); a call that returned
an answer of any kind (even one that fails the caller's schema) is a success.

State lives in a ``BreakerStore``: ``InMemoryBreakerStore`` for one process; a
shared store (Redis) lets replicas learn once that a model is down. All state is
in wall-clock seconds so replicas can share it. The decisions are pure
functions of (circuit, event, now) below, so every store applies the same rules:
a store only has to offer an atomic read-modify-write. A store that fails (its
backend is down) is logged and the call goes through: the breaker never stops
traffic on its own account.

State changes go to ``listener`` (default: logged) and are counted in
``transitions`` for metrics.

Reads on the Route path: a shared store's circuit is read once per model and then
refreshed in the background when the last read is older than ``read_cache_seconds``
(0.5 s), so a closed circuit costs no round trip and a slow or blackholed store
never holds a call up (after that first read, itself bounded by the store's
timeout). What this replica changes it sees at once; what another replica changes,
within that time plus one round trip. Decisions on a circuit that is not closed
always go to the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from llm_router_server.config.model import BreakerPolicy
from llm_router_server.errors import (
    BreakerEffect,
    LLMRouterError,
    ProviderAuthenticationError,
    ProviderError,
)
from llm_router_server.types import ModelSpec

logger = logging.getLogger("llm_router.breaker")


class BreakerStoreError(LLMRouterError):
    """The breaker's store could not be read or written (e.g. Redis is down)."""


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Circuit:
    """The state of one model's circuit. Times are Unix seconds."""

    state: State = State.CLOSED
    failures: int = 0
    """Consecutive failures so far."""
    open_until: float = 0.0
    opened_at: float = 0.0
    probe_until: float = 0.0
    """While half-open: a probe holds the circuit until this time."""
    cool_down: float = 0.0
    """The last cool-down used (doubled after a failed probe)."""
    reason: str = ""
    """The failure that opened the circuit (already a clean, bounded line)."""

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Circuit:
        try:
            return cls(
                state=State(data["state"]),
                failures=int(data["failures"]),  # type: ignore[call-overload]
                open_until=float(data["open_until"]),  # type: ignore[arg-type]
                opened_at=float(data["opened_at"]),  # type: ignore[arg-type]
                probe_until=float(data["probe_until"]),  # type: ignore[arg-type]
                cool_down=float(data["cool_down"]),  # type: ignore[arg-type]
                reason=str(data["reason"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise BreakerStoreError(f"unreadable circuit state: {exc}") from exc


@dataclass(frozen=True)
class Fault:
    """A failed call as the breaker sees it."""

    reason: str
    opens_now: bool = False
    cool_down: float | None = None
    """Seconds to stay open (a Retry-After); None: the policy's cool-down."""


@dataclass(frozen=True)
class Admission:
    """Whether a call to a model may go ahead."""

    allowed: bool
    probe: bool = False
    reason: str = ""
    """Why it may not (for the skipped attempt)."""


@dataclass(frozen=True)
class Transition:
    """A circuit changed state."""

    model: str
    api_base: str
    old: State
    new: State
    reason: str
    cool_down: float = 0.0
    time: float = 0.0
    """Unix time of the change."""


Change = Callable[[Circuit], Circuit]
"""A pure update of one circuit."""


class BreakerStore(Protocol):
    """Where circuits live. ``update`` must be atomic per key across everyone sharing
    the store; both methods raise ``BreakerStoreError`` when the backend fails."""

    async def load(self, key: str) -> Circuit:
        """The circuit for ``key`` (closed when unknown)."""

    async def update(self, key: str, change: Change) -> tuple[Circuit, Circuit]:
        """Replace the circuit by ``change(current)`` atomically; return (old, new)."""

    async def aclose(self) -> None:
        """Release connections."""


class InMemoryBreakerStore:
    """Circuits in this process only (the default, and the fake of the seam)."""

    def __init__(self) -> None:
        self.circuits: dict[str, Circuit] = {}

    async def load(self, key: str) -> Circuit:
        return self.circuits.get(key, Circuit())

    async def update(self, key: str, change: Change) -> tuple[Circuit, Circuit]:
        old = self.circuits.get(key, Circuit())
        new = change(old)
        self.circuits[key] = new
        return old, new

    async def aclose(self) -> None:
        return None


def counts_as_success(exc: ProviderError | None) -> bool:
    """Whether a call that ended in ``exc`` still shows the model answering (a refusal)."""
    return exc is not None and exc.breaker_effect is BreakerEffect.SUCCESS


def fault_of(exc: ProviderError | None) -> Fault | None:
    """How a call's outcome counts: a Fault, or None for "the model is up" / "says nothing"."""
    if exc is None:
        return None
    if exc.breaker_effect is BreakerEffect.FAILURE:
        return Fault(str(exc))
    if exc.breaker_effect is BreakerEffect.OPENS:
        return Fault(str(exc), opens_now=True, cool_down=exc.open_for)
    return None


# -- the rules: pure functions of (circuit, event, now) ------------------------------------


def admit(circuit: Circuit, now: float, lease: float) -> tuple[Circuit, Admission]:
    """May a call go ahead now? Returns the new circuit and the answer."""
    if circuit.state is State.CLOSED:
        return circuit, Admission(True)
    if circuit.state is State.OPEN and now < circuit.open_until:
        left = circuit.open_until - now
        return circuit, Admission(
            False, reason=f"circuit open for {left:.3g}s more after: {circuit.reason}"
        )
    if circuit.state is State.HALF_OPEN and now < circuit.probe_until:
        return circuit, Admission(False, reason="circuit half-open: a probe call is in flight")
    probing = dataclasses.replace(circuit, state=State.HALF_OPEN, probe_until=now + lease)
    return probing, Admission(True, probe=True)


def succeed(circuit: Circuit) -> Circuit:
    return Circuit() if circuit != Circuit() else circuit


def release(circuit: Circuit) -> Circuit:
    """A probe ended without saying anything about health: let the next call probe."""
    if circuit.state is State.HALF_OPEN:
        return dataclasses.replace(circuit, probe_until=0.0)
    return circuit


def fail(circuit: Circuit, fault: Fault, now: float, policy: BreakerPolicy) -> Circuit:
    failures = circuit.failures + 1
    if circuit.state is State.HALF_OPEN:  # the probe failed: back off, unless told how long
        doubled = max(circuit.cool_down, policy.cool_down_seconds) * 2
        cool_down = doubled if fault.cool_down is None else fault.cool_down
    elif fault.opens_now or failures >= policy.failure_threshold:
        cool_down = policy.cool_down_seconds if fault.cool_down is None else fault.cool_down
    elif circuit.state is State.OPEN:  # a forced (last-resort) call failed: stay open
        cool_down = circuit.cool_down
    else:
        return dataclasses.replace(circuit, failures=failures)
    cool_down = min(cool_down, policy.max_cool_down_seconds)
    return Circuit(
        state=State.OPEN,
        failures=failures,
        open_until=now + cool_down,
        opened_at=now,
        cool_down=cool_down,
        reason=fault.reason,
    )


# -- the breaker ----------------------------------------------------------------------------


def key_of(spec: ModelSpec) -> str:
    return f"{spec.model}|{spec.api_base or ''}"


class CircuitBreaker:
    """Applies the rules for every model over one ``BreakerStore``."""

    def __init__(
        self,
        store: BreakerStore | None = None,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        listener: Callable[[Transition], None] | None = None,
        read_cache_seconds: float | None = None,
    ) -> None:
        self.store = store if store is not None else InMemoryBreakerStore()
        local = isinstance(self.store, InMemoryBreakerStore)
        self.read_cache_seconds = (
            read_cache_seconds if read_cache_seconds is not None else 0.0 if local else 0.5
        )
        """How long a circuit read from the store is reused on the Route path (0: always read)."""
        self._cache: dict[str, tuple[float, Circuit]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self.policy = policy if policy is not None else BreakerPolicy()
        self.clock = clock
        self.listeners: list[Callable[[Transition], None]] = [_log_transition]
        if listener is not None:
            self.listeners.append(listener)
        self.transitions: Counter[tuple[str, str]] = Counter()
        """(model, new state) -> how often this process moved a circuit there."""
        self.store_errors = 0

    async def admit(self, spec: ModelSpec, lease: float) -> Admission:
        """Whether to call ``spec`` now; a probe holds the circuit for ``lease`` seconds."""
        if not self.policy.enabled:
            return Admission(True)
        key = key_of(spec)
        try:
            current = await self._load(key)
            if current.state is State.CLOSED:
                return Admission(True)
            verdict: list[Admission] = []

            def change(circuit: Circuit) -> Circuit:
                new, admission = admit(circuit, self.clock(), lease)
                verdict[:] = [admission]
                return new

            old, new = await self._update(key, change)
        except BreakerStoreError as exc:
            self._store_failed(exc)
            return Admission(True)
        self._changed(spec, old, new, "cool-down over: one probe call")
        return verdict[0]

    async def record(self, spec: ModelSpec, error: ProviderError | None, *, healthy: bool) -> None:
        """Report how a call ended: ``healthy`` (the model answered), or ``error``."""
        if not self.policy.enabled:
            return
        healthy = healthy or counts_as_success(error)
        fault = None if healthy else fault_of(error)
        if isinstance(error, ProviderAuthenticationError):
            logger.error(
                "authentication failed for %s: check its API key (%s); opening its circuit",
                spec.model,
                error,
            )
        now = self.clock()
        if fault is not None:
            change: Change = lambda c: fail(c, fault, now, self.policy)  # noqa: E731
            why = fault.reason
        elif healthy:
            change, why = succeed, "a call succeeded"
        else:
            change, why = release, ""
        key = key_of(spec)
        try:
            if change is succeed and (await self._load(key)) == Circuit():
                return
            old, new = await self._update(key, change)
        except BreakerStoreError as exc:
            self._store_failed(exc)
            return
        self._changed(spec, old, new, why)

    async def least_recently_failed(self, specs: Iterable[ModelSpec]) -> ModelSpec | None:
        """The model whose circuit opened longest ago (the last resort when all are open)."""
        best: tuple[float, ModelSpec] | None = None
        for spec in specs:
            try:
                circuit = await self.store.load(key_of(spec))
            except BreakerStoreError as exc:
                self._store_failed(exc)
                return spec
            if best is None or circuit.opened_at < best[0]:
                best = (circuit.opened_at, spec)
        return None if best is None else best[1]

    async def states(self, specs: Iterable[ModelSpec]) -> dict[str, Circuit]:
        """Per model string, its most open circuit (for snapshots); {} when the breaker is off
        or its store cannot be read now."""
        if not self.policy.enabled:
            return {}
        rank = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}
        states: dict[str, Circuit] = {}
        try:
            for key, spec in {key_of(s): s for s in specs}.items():
                circuit = await self.store.load(key)
                known = states.get(spec.model)
                if known is None or rank[circuit.state] > rank[known.state]:
                    states[spec.model] = circuit
        except BreakerStoreError as exc:
            self._store_failed(exc)
            return {}
        return states

    async def aclose(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
        await asyncio.gather(*self._refreshing.values(), return_exceptions=True)
        await self.store.aclose()

    async def _load(self, key: str) -> Circuit:
        """The circuit as last read; stale reads are refreshed in the background."""
        if self.read_cache_seconds <= 0:
            return await self.store.load(key)
        hit = self._cache.get(key)
        if hit is None:
            try:
                circuit = await self.store.load(key)
            except BreakerStoreError:
                # Unreadable now: take it as closed and refresh in the background from
                # here on, so later calls do not wait on the store again.
                self._cache[key] = (time.monotonic(), Circuit())
                raise
            self._cache[key] = (time.monotonic(), circuit)
            return circuit
        if time.monotonic() - hit[0] >= self.read_cache_seconds and key not in self._refreshing:
            self._refreshing[key] = asyncio.create_task(self._refresh(key, hit[1]))
        return hit[1]

    async def _refresh(self, key: str, known: Circuit) -> None:
        try:
            circuit = await self.store.load(key)
        except BreakerStoreError as exc:
            self._store_failed(exc)
            circuit = known  # keep what we knew; try again after the next window
        finally:
            self._refreshing.pop(key, None)
        self._cache[key] = (time.monotonic(), circuit)

    async def _update(self, key: str, change: Change) -> tuple[Circuit, Circuit]:
        old, new = await self.store.update(key, change)
        if self.read_cache_seconds > 0:
            self._cache[key] = (time.monotonic(), new)
        return old, new

    def _changed(self, spec: ModelSpec, old: Circuit, new: Circuit, why: str) -> None:
        if old.state is new.state and not (new.state is State.OPEN and old != new):
            return
        transition = Transition(
            model=spec.model,
            api_base=spec.api_base or "",
            old=old.state,
            new=new.state,
            reason=why,
            cool_down=new.cool_down if new.state is State.OPEN else 0.0,
            time=self.clock(),
        )
        self.transitions[(spec.model, new.state.value)] += 1
        for listener in self.listeners:
            try:
                listener(transition)
            except Exception:
                logger.exception("breaker listener failed")

    def _store_failed(self, exc: BreakerStoreError) -> None:
        self.store_errors += 1
        if self.store_errors == 1 or self.store_errors % 100 == 0:
            logger.warning(
                "circuit breaker store failed (%d times so far); letting calls through: %s",
                self.store_errors,
                exc,
            )


def _log_transition(t: Transition) -> None:
    level = logging.WARNING if t.new is State.OPEN else logging.INFO
    extra = f" for {t.cool_down:.3g}s" if t.new is State.OPEN else ""
    logger.log(
        level,
        "circuit %s -> %s%s: %s (%s)",
        t.old.value,
        t.new.value,
        extra,
        t.model,
        t.reason,
    )
