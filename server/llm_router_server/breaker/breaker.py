"""The circuit breaker: the rules of ``rules.py`` for every model, over one ``BreakerStore``.

A model whose calls keep failing is skipped for a cool-down instead of making
every request pay its timeout; after the cool-down one probe call at a time is
let through (half-open) and its success closes the circuit again.

State lives in a ``BreakerStore`` (``store.py``): ``InMemoryBreakerStore`` for one
process; a shared store (Redis, ``redis_store.py``) lets replicas learn once that
a model is down. A store that fails (its backend is down) is logged and the call
goes through: the breaker never stops traffic on its own account.

State changes go to ``listeners`` (the first logs them) and are counted in
``transitions`` for metrics. Whenever a circuit is seen open, ``on_open`` hooks hear
its key: the prober (``prober.py``) wakes up, and the watch on calls in flight
(``watch.py``) cuts short the calls still waiting on that model. A call still waiting
after ``hang_fraction`` of its model's timeout is reported by that watch (``slow_call``).

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
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from llm_router_server.breaker.rules import (
    ADMITTED,
    CLOSED,
    Admission,
    Change,
    Circuit,
    Fault,
    State,
    Transition,
    admit,
    claim_probe,
    counts_as_success,
    fail,
    fault_of,
    key_of,
    probe_failed,
    probes_in_background,
    release,
    shown_base,
    slow,
    succeed,
)
from llm_router_server.breaker.store import BreakerStore, BreakerStoreError, InMemoryBreakerStore
from llm_router_server.config.model import BreakerPolicy
from llm_router_server.errors import ProviderAuthenticationError, ProviderError
from llm_router_server.types import ModelSpec

logger = logging.getLogger("llm_router.breaker")


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
        self.probing = False
        """True while a ``Prober`` probes open circuits in the background: models whose
        ``probe`` mode says so get no live probe call then."""
        self.on_open: list[Callable[[str], None]] = []
        """Called with a circuit's key whenever it is seen open."""
        self._open: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, spec: ModelSpec, lease: float) -> Admission:
        """Whether to call ``spec`` now; a probe holds the circuit for ``lease`` seconds."""
        if not self.policy.enabled:
            return ADMITTED
        key = key_of(spec)
        try:
            current = await self._load(key)
            if current.state is State.CLOSED:
                return ADMITTED
            verdict: list[Admission] = []

            def change(circuit: Circuit) -> Circuit:
                live = not (self.probing and probes_in_background(spec.probe, circuit))
                new, admission = admit(circuit, self.clock(), lease, live=live)
                verdict[:] = [admission]
                return new

            old, new = await self._update(key, change)
        except BreakerStoreError as exc:
            self.store_failed(exc)
            return ADMITTED
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
            if change is succeed and (await self._load(key)) == CLOSED:
                return
            old, new = await self._update(key, change)
        except BreakerStoreError as exc:
            self.store_failed(exc)
            return
        self._changed(spec, old, new, why)

    def slow_call(self, spec: ModelSpec, waited: float) -> None:
        """A call to ``spec`` is still waiting after ``waited`` seconds (``hang_fraction`` of
        its timeout): count one failure now, in the background."""
        task = asyncio.create_task(self._slow(spec, waited))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _slow(self, spec: ModelSpec, waited: float) -> None:
        share = self.policy.hang_fraction
        fault = Fault(f"no answer after {waited:.3g}s ({share:g} of its timeout)")
        now = self.clock()
        try:
            old, new = await self._update(key_of(spec), lambda c: slow(c, fault, now, self.policy))
        except BreakerStoreError as exc:
            self.store_failed(exc)
            return
        self._changed(spec, old, new, fault.reason)

    def is_open(self, key: str) -> bool:
        """Whether this replica last saw the circuit ``key`` open (no I/O)."""
        return key in self._open

    async def current(self, spec: ModelSpec) -> Circuit:
        """The circuit as the store has it now (raises ``BreakerStoreError``)."""
        key = key_of(spec)
        circuit = await self.store.load(key)
        self._seen(key, circuit)
        return circuit

    async def claim_probe(self, spec: ModelSpec) -> bool:
        """Take this interval's background probe of ``spec``'s open circuit, if nobody has."""
        claimed: list[bool] = []
        interval = self.policy.probe_interval_seconds

        def change(circuit: Circuit) -> Circuit:
            new, ok = claim_probe(circuit, self.clock(), interval)
            claimed[:] = [ok]
            return new

        await self._update(key_of(spec), change)
        return claimed[0]

    async def probed(self, spec: ModelSpec, error: ProviderError | None) -> None:
        """How a background probe of ``spec`` ended: ``error`` None if the model answered."""
        if error is None or counts_as_success(error):
            change: Change = succeed
            why = "a background probe answered"
        else:
            fault = fault_of(error) or Fault(str(error))
            now = self.clock()
            change, why = (lambda c: probe_failed(c, fault, now, self.policy)), fault.reason
        try:
            old, new = await self._update(key_of(spec), change)
        except BreakerStoreError as exc:
            self.store_failed(exc)
            return
        if old.state is not new.state or old.firm is not new.firm:
            self._changed(spec, old, new, why)

    async def least_recently_failed(self, specs: Iterable[ModelSpec]) -> ModelSpec | None:
        """The model whose circuit opened longest ago (the last resort when all are open)."""
        best: tuple[float, ModelSpec] | None = None
        for spec in specs:
            try:
                circuit = await self.store.load(key_of(spec))
            except BreakerStoreError as exc:
                self.store_failed(exc)
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
            self.store_failed(exc)
            return {}
        return states

    async def aclose(self) -> None:
        tasks = [*self._refreshing.values(), *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.aclose()

    async def _load(self, key: str) -> Circuit:
        """The circuit as last read; stale reads are refreshed in the background."""
        if self.read_cache_seconds <= 0:
            circuit = await self.store.load(key)
            self._seen(key, circuit)
            return circuit
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
            self._seen(key, circuit)
            return circuit
        if time.monotonic() - hit[0] >= self.read_cache_seconds and key not in self._refreshing:
            self._refreshing[key] = asyncio.create_task(self._refresh(key, hit[1]))
        return hit[1]

    async def _refresh(self, key: str, known: Circuit) -> None:
        try:
            circuit = await self.store.load(key)
        except BreakerStoreError as exc:
            self.store_failed(exc)
            circuit = known  # keep what we knew; try again after the next window
        finally:
            self._refreshing.pop(key, None)
        self._cache[key] = (time.monotonic(), circuit)
        self._seen(key, circuit)

    async def _update(self, key: str, change: Change) -> tuple[Circuit, Circuit]:
        old, new = await self.store.update(key, change)
        if self.read_cache_seconds > 0:
            self._cache[key] = (time.monotonic(), new)
        self._seen(key, new)
        return old, new

    def _seen(self, key: str, circuit: Circuit) -> None:
        if circuit.state is not State.OPEN:
            self._open.discard(key)
            return
        self._open.add(key)
        for hook in self.on_open:
            try:
                hook(key)
            except Exception:
                logger.exception("breaker on_open hook failed")

    def _changed(self, spec: ModelSpec, old: Circuit, new: Circuit, why: str) -> None:
        if old.state is new.state and not (new.state is State.OPEN and old != new):
            return
        transition = Transition(
            model=spec.model,
            api_base=shown_base(spec),
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

    def store_failed(self, exc: BreakerStoreError) -> None:
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
