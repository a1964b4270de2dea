"""The circuit breaker's rules: pure functions of (circuit, event, now), one circuit per
model (model string + api_base), closed / open / half-open.

The rules, per circuit (``BreakerPolicy`` holds the numbers):

- closed: calls go through. ``failure_threshold`` consecutive failures open it.
  A call still waiting after ``hang_fraction`` of its model's timeout counts as
  one failure then (``slow``), without waiting for its end. An error whose
  ``breaker_effect`` is OPENS (a rate limit, an authentication error: the
  provider's own word) opens it at once, for the provider's ``Retry-After``
  (capped by ``max_cool_down``) or ``cool_down``; so does HANG (no answer for the
  model's whole timeout), for ``cool_down``.
- open: calls are skipped (``Category.CIRCUIT_OPEN``). How it closes depends on
  the model's ``probe`` mode (``probes_in_background``):
  - in the background: the router sends a one-token probe every
    ``probe_interval_seconds`` (``claim_probe``: one probe per interval for
    everyone sharing the store; after the provider's own word, not before its
    time is up). The first probe that gets an answer closes the circuit; a probe
    that fails leaves it open (``probe_failed``). No caller's call is used as a
    probe, so none waits on a model that still hangs.
  - live (or when nothing probes in the background): after the cool-down the
    circuit goes half-open.
- half-open: one call is let through as a probe, holding a lease for the
  model's timeout; others are skipped meanwhile. A success closes the circuit;
  a failure opens it again for twice the last cool-down (or the new
  Retry-After), capped. A lease that is never reported (the probe's caller
  vanished) expires, and the next call probes.

What counts (``fault_of``) is what each error class says it means
(``ProviderError.breaker_effect``, drawn in ``errors.py``); a call that returned
an answer of any kind (even one that fails the caller's schema) is a success. All times are
wall-clock seconds, so replicas sharing a store can share circuits. Nothing here
does I/O: ``breaker.py`` applies these rules over a store's atomic
read-modify-write (``store.py``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass

from llm_router_server.config.model import BreakerPolicy, ProbeMode
from llm_router_server.errors import BreakerEffect, ProviderError
from llm_router_server.safe_text import without_credentials
from llm_router_server.types import ModelSpec


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
    """While half-open: a live probe call holds the circuit until this time. While open: no
    background probe starts before this time (the next probe's slot)."""
    cool_down: float = 0.0
    """The last cool-down used (doubled after a failed probe)."""
    reason: str = ""
    """The failure that opened the circuit (already a clean, bounded line)."""
    firm: bool = False
    """Opened on the provider's own word (a rate limit, a refused key): no probe before
    ``open_until``."""


CLOSED = Circuit()
"""The fresh circuit (closed, no failures): shared, as circuits are immutable."""


@dataclass(frozen=True)
class Fault:
    """A failed call as the breaker sees it."""

    reason: str
    opens_now: bool = False
    cool_down: float | None = None
    """Seconds to stay open (a Retry-After); None: the policy's cool-down."""
    firm: bool = False
    """The provider's own word (``BreakerEffect.OPENS``): wait out ``cool_down`` unprobed."""


@dataclass(frozen=True)
class Admission:
    """Whether a call to a model may go ahead."""

    allowed: bool
    probe: bool = False
    reason: str = ""
    """Why it may not (for the skipped attempt)."""


ADMITTED = Admission(True)
"""A call may go ahead (shared: admissions are immutable)."""


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


def shown_base(spec: ModelSpec) -> str:
    """A model's api_base as circuits show it (keys, events, labels): without credentials."""
    return without_credentials(spec.api_base or "")


def key_of(spec: ModelSpec) -> str:
    """The circuit of a model: its model string and api_base (without credentials: the key
    is a Redis key name)."""
    return f"{spec.model}|{shown_base(spec)}"


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
        return Fault(str(exc), opens_now=True, cool_down=exc.open_for, firm=True)
    if exc.breaker_effect is BreakerEffect.HANG:
        return Fault(str(exc), opens_now=True)
    return None


def probes_in_background(mode: ProbeMode, circuit: Circuit) -> bool:
    """Whether this open circuit is probed in the background (else by a live call)."""
    return mode == "background" or (mode == "auto" and not circuit.firm)


def admit(
    circuit: Circuit, now: float, lease: float, *, live: bool = True
) -> tuple[Circuit, Admission]:
    """May a call go ahead now? Returns the new circuit and the answer. ``live``: whether a
    caller's call may probe the model after the cool-down (False: background probes do)."""
    if circuit.state is State.CLOSED:
        return circuit, ADMITTED
    if not live:
        return circuit, Admission(
            False, reason=f"circuit open, probed in the background, after: {circuit.reason}"
        )
    if circuit.state is State.OPEN and now < circuit.open_until:
        left = circuit.open_until - now
        return circuit, Admission(
            False, reason=f"circuit open for {left:.3g}s more after: {circuit.reason}"
        )
    if circuit.state is State.HALF_OPEN and now < circuit.probe_until:
        return circuit, Admission(False, reason="circuit half-open: a probe call is in flight")
    probing = dataclasses.replace(circuit, state=State.HALF_OPEN, probe_until=now + lease)
    return probing, Admission(True, probe=True)


def claim_probe(circuit: Circuit, now: float, interval: float) -> tuple[Circuit, bool]:
    """May a background probe start now? Whoever gets True sends it; the next slot is
    ``interval`` later, for everyone sharing the circuit."""
    if circuit.state is State.CLOSED or now < circuit.probe_until:
        return circuit, False
    if circuit.firm and now < circuit.open_until:
        return circuit, False
    # A half-open circuit whose live probe vanished is open again, and probed here.
    return dataclasses.replace(circuit, state=State.OPEN, probe_until=now + interval), True


def probe_failed(circuit: Circuit, fault: Fault, now: float, policy: BreakerPolicy) -> Circuit:
    """A background probe failed: the circuit stays open (no cool-down to double: the next
    probe comes one interval later), unless the provider now says how long to wait."""
    if circuit.state is State.CLOSED:
        return circuit  # closed meanwhile: a late probe says nothing new
    if fault.firm:
        return _opened(circuit.failures + 1, fault, now, policy, _cool_down(fault, policy))
    return dataclasses.replace(circuit, failures=circuit.failures + 1, reason=fault.reason)


def slow(circuit: Circuit, fault: Fault, now: float, policy: BreakerPolicy) -> Circuit:
    """A call got no answer within ``hang_fraction`` of its timeout: one failure, unless
    the circuit is open already (a last-resort call)."""
    if circuit.state is State.OPEN:
        return circuit
    return fail(circuit, fault, now, policy)


def succeed(circuit: Circuit) -> Circuit:
    """The model answered: the circuit closes."""
    return CLOSED if circuit != CLOSED else circuit


def release(circuit: Circuit) -> Circuit:
    """A probe ended without saying anything about health: let the next call probe."""
    if circuit.state is State.HALF_OPEN:
        return dataclasses.replace(circuit, probe_until=0.0)
    return circuit


def fail(circuit: Circuit, fault: Fault, now: float, policy: BreakerPolicy) -> Circuit:
    """A call failed: count it, and open (or reopen) the circuit when the rules say so."""
    failures = circuit.failures + 1
    if circuit.state is State.HALF_OPEN:  # the probe failed: back off, unless told how long
        doubled = max(circuit.cool_down, policy.cool_down_seconds) * 2
        cool_down = doubled if fault.cool_down is None else fault.cool_down
    elif fault.opens_now or failures >= policy.failure_threshold:
        cool_down = _cool_down(fault, policy)
    elif circuit.state is State.OPEN:  # a forced (last-resort) call failed: stay open
        cool_down = circuit.cool_down
    else:
        return dataclasses.replace(circuit, failures=failures)
    return _opened(failures, fault, now, policy, cool_down)


def _cool_down(fault: Fault, policy: BreakerPolicy) -> float:
    return policy.cool_down_seconds if fault.cool_down is None else fault.cool_down


def _opened(failures: int, fault: Fault, now: float, policy: BreakerPolicy, cool: float) -> Circuit:
    cool_down = min(cool, policy.max_cool_down_seconds)
    return Circuit(
        state=State.OPEN,
        failures=failures,
        open_until=now + cool_down,
        opened_at=now,
        probe_until=now + policy.probe_interval_seconds,  # the first background probe
        cool_down=cool_down,
        reason=fault.reason,
        firm=fault.firm,
    )
