"""The rules of coming back, as pure functions: background probe slots, failed probes
without a doubled cool-down, slow calls, hangs, and the provider's own word."""

from __future__ import annotations

import pytest

from llm_router_server.breaker.redis_store import _decode, _encode
from llm_router_server.breaker.rules import (
    Circuit,
    State,
    admit,
    claim_probe,
    fail,
    fault_of,
    probe_failed,
    probes_in_background,
    slow,
)
from llm_router_server.breaker.watch import cuttable
from llm_router_server.config import BreakerPolicy, ProbeMode, parse
from llm_router_server.errors import (
    ConfigError,
    ProviderAuthenticationError,
    ProviderCutShortError,
    ProviderHangError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    timeout_error,
)
from llm_router_server.types import ChainSpec, ModelSpec

POLICY = BreakerPolicy()
NOW = 1_000.0


def opened_by(error: Exception, now: float = NOW) -> Circuit:
    """The circuit after ``error`` (``failure_threshold`` times when one does not open it)."""
    fault = fault_of(error)  # type: ignore[arg-type]
    assert fault is not None
    circuit = Circuit()
    while circuit.state is State.CLOSED:
        circuit = fail(circuit, fault, now, POLICY)
    return circuit


def test_a_hang_opens_at_once_and_is_probed_in_the_background() -> None:
    circuit = opened_by(ProviderHangError("no answer within 8s (timeout)"))
    assert circuit.state is State.OPEN and not circuit.firm
    assert circuit.probe_until == NOW + POLICY.probe_interval_seconds
    assert probes_in_background("auto", circuit)


@pytest.mark.parametrize(
    "error",
    [
        ProviderRateLimitError("429", retry_after=20),
        ProviderAuthenticationError("401", status_code=401),
    ],
)
def test_the_providers_own_word_is_firm(error: Exception) -> None:
    circuit = opened_by(error)
    assert circuit.firm
    assert not probes_in_background("auto", circuit)
    assert probes_in_background("background", circuit)
    # Even in the background, nothing probes before the time the provider asked for.
    assert claim_probe(circuit, circuit.open_until - 0.1, 1.0) == (circuit, False)
    assert claim_probe(circuit, circuit.open_until, 1.0)[1]


@pytest.mark.parametrize("mode", ["auto", "background", "live"])
def test_the_mode_decides_who_probes(mode: ProbeMode) -> None:
    circuit = opened_by(ProviderOverloadedError("503", status_code=503))
    assert probes_in_background(mode, circuit) is (mode != "live")


def test_one_probe_slot_per_interval() -> None:
    circuit = opened_by(ProviderOverloadedError("503", status_code=503))
    early = NOW + 0.5
    assert claim_probe(circuit, early, 1.0) == (circuit, False)
    claimed, ok = claim_probe(circuit, NOW + 1.0, 1.0)
    assert ok and claimed.probe_until == NOW + 2.0 and claimed.state is State.OPEN
    assert claim_probe(claimed, NOW + 1.5, 1.0) == (claimed, False)  # another replica
    assert claim_probe(Circuit(), NOW, 1.0) == (Circuit(), False)


def test_a_half_open_circuit_whose_live_probe_vanished_is_probed_again() -> None:
    circuit = Circuit(State.HALF_OPEN, 3, probe_until=NOW - 1, reason="x")
    claimed, ok = claim_probe(circuit, NOW, 1.0)
    assert ok and claimed.state is State.OPEN


def test_a_failed_background_probe_keeps_the_cool_down() -> None:
    circuit = opened_by(ProviderOverloadedError("503", status_code=503))
    fault = fault_of(ProviderTimeoutError("probe: no answer within 8s"))
    assert fault is not None
    after = probe_failed(circuit, fault, NOW + 5, POLICY)
    assert after.state is State.OPEN
    assert after.cool_down == circuit.cool_down and after.open_until == circuit.open_until
    assert after.failures == circuit.failures + 1 and after.reason.startswith("probe:")
    assert probe_failed(Circuit(), fault, NOW, POLICY) == Circuit()  # closed meanwhile


def test_a_probe_told_to_wait_makes_the_circuit_firm() -> None:
    circuit = opened_by(ProviderOverloadedError("503", status_code=503))
    fault = fault_of(ProviderRateLimitError("429", retry_after=7))
    assert fault is not None
    after = probe_failed(circuit, fault, NOW + 5, POLICY)
    assert after.firm and after.open_until == NOW + 12


def test_without_background_probes_the_live_probe_still_doubles() -> None:
    circuit = opened_by(ProviderOverloadedError("503", status_code=503))
    probing, admission = admit(circuit, circuit.open_until, lease=9)
    assert admission.probe and probing.state is State.HALF_OPEN
    fault = fault_of(ProviderOverloadedError("503", status_code=503))
    assert fault is not None
    assert fail(probing, fault, circuit.open_until, POLICY).cool_down == 60


def test_a_call_is_never_the_probe_when_probes_run_in_the_background() -> None:
    circuit = opened_by(ProviderOverloadedError("503", status_code=503))
    same, admission = admit(circuit, circuit.open_until + 100, lease=9, live=False)
    assert same == circuit and not admission.allowed
    assert "probed in the background" in admission.reason


def test_a_slow_call_counts_once_unless_the_circuit_is_open() -> None:
    fault = fault_of(ProviderTimeoutError("no answer after 4s"))
    assert fault is not None
    once = slow(Circuit(), fault, NOW, POLICY)
    assert once.state is State.CLOSED and once.failures == 1
    opened = slow(slow(once, fault, NOW, POLICY), fault, NOW, POLICY)
    assert opened.state is State.OPEN
    assert slow(opened, fault, NOW + 1, POLICY) == opened


def test_a_timeout_is_a_hang_only_when_it_was_the_models_own() -> None:
    assert isinstance(timeout_error(8.0, 8.0), ProviderHangError)
    shorter = timeout_error(2.0, 8.0)
    assert type(shorter) is ProviderTimeoutError and "caller's deadline" in str(shorter)
    assert fault_of(ProviderCutShortError("cut short")) is None


def test_only_models_with_a_next_model_in_every_chain_are_cut_short() -> None:
    a, b, c = (ModelSpec(name, timeout=1) for name in "abc")
    chains = [ChainSpec("one", (a, b, c)), ChainSpec("two", (b,)), ChainSpec("three", (a, c))]
    assert cuttable(chains) == {"a|"}


def test_older_replicas_circuits_decode_without_firm() -> None:
    circuit = opened_by(ProviderRateLimitError("429", retry_after=3))
    data = _encode(circuit)
    assert _decode(data) == circuit
    del data["firm"]
    assert not _decode(data).firm


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ({"breaker": {"hang_fraction": 1.5}}, "breaker.hang_fraction: must be <= 1"),
        ({"breaker": {"hang_fraction": 0}}, "breaker.hang_fraction: must be > 0"),
        ({"breaker": {"probe_interval_seconds": 0}}, "breaker.probe_interval_seconds: must be > 0"),
        (
            {"chains": {"c": {"models": [{"model": "m", "probe": "never"}]}}, "default_chain": "c"},
            "chains.c.models[0].probe: expected one of 'auto', 'background', 'live'",
        ),
    ],
)
def test_bad_probe_settings_stop_start_up(toml: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(toml, {})
