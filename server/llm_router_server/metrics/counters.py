"""Counter arithmetic: what one Route call adds to the per-model counters, and what the
counters say (percentiles, ``ModelStats``).

The classification of attempts (``success``, ``fallback``, ``error``) is written once, in
``attempt_kinds``, over a call's outcomes in order: the counters here, the Redis hashes
(``redis_codec.increments``), the Prometheus fallback counter and the ``llm-router watch``
view over protos all use it. Per-call counting is written once, in
``ModelCounters.record_call`` (per model) and ``ChainCounters.record_call`` (per chain).

Money is counted in whole nano-dollars (``pricing.price.NANO_USD``), so that the sums are
exact and Redis can add them with ``HINCRBY``; an attempt (or call) whose cost is unknown
is counted in ``cost_unknown`` and left out of the sum.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from llm_router_server.pricing.price import NANO_USD, call_cost, nano
from llm_router_server.types import Attempt, Outcome, RouteEvent, RouteStatus, Usage

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    *(1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 750),
    *(1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000, 60000, 120000),
)
"""Upper bounds of the attempt-latency histogram (ms); a last bucket takes the rest."""

Kind = Literal["success", "fallback", "error"]
"""The counter an attempt that ran goes to."""

COUNT_KINDS: tuple[Kind, ...] = ("success", "fallback", "error")
TOKEN_KINDS = ("prompt_tokens", "completion_tokens", "total_tokens")
MONEY_KINDS = ("cost_nusd", "cost_unknown", "avoided_nusd", "repairs", "repair_successes")
"""Per-model counters of money (nano-USD) and repairs."""
CHAIN_KINDS = ("calls", "answered", "local", "cost_nusd", "cost_unknown", "avoided_nusd")
"""Per-chain counters."""


def attempt_kinds(outcomes: Sequence[Outcome]) -> list[Kind | None]:
    """The counter of each attempt of one call, given the attempts' outcomes in order:
    ``success``; ``fallback`` (rejected, the chain went on); ``error`` (rejected, and it
    was the last attempt of its call that ran); None for a skipped attempt (it did not
    run and is not counted)."""
    ran = [i for i, outcome in enumerate(outcomes) if outcome is not Outcome.SKIPPED]
    last = ran[-1] if ran else -1
    kinds: list[Kind | None] = []
    for i, outcome in enumerate(outcomes):
        if outcome is Outcome.SKIPPED:
            kinds.append(None)
        elif outcome is Outcome.SUCCESS:
            kinds.append("success")
        else:
            kinds.append("fallback" if i < last else "error")
    return kinds


def classify(attempts: Iterable[Attempt]) -> list[tuple[Attempt, Kind]]:
    """Each attempt that ran with its counter (see ``attempt_kinds``); skipped attempts
    are left out."""
    attempts = tuple(attempts)
    kinds = attempt_kinds([a.outcome for a in attempts])
    return [(a, kind) for a, kind in zip(attempts, kinds, strict=True) if kind is not None]


def latency_bucket(latency_ms: float) -> int:
    """Index of the histogram bucket for a latency (``len(LATENCY_BUCKETS_MS)``: above all)."""
    return bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def percentile(buckets: Mapping[int, int], q: float) -> float:
    """The ``q`` quantile (0..1) of a bucketed histogram, interpolated inside its bucket."""
    total = sum(buckets.values())
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for index in sorted(buckets):
        count = buckets[index]
        if count and seen + count >= rank:
            low = LATENCY_BUCKETS_MS[index - 1] if index > 0 else 0.0
            high = LATENCY_BUCKETS_MS[min(index, len(LATENCY_BUCKETS_MS) - 1)]
            if index >= len(LATENCY_BUCKETS_MS):
                return float(high)
            return low + (high - low) * (rank - seen) / count
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])


@dataclass(frozen=True)
class ModelStats:
    """What a snapshot says about one model."""

    success: int = 0
    fallback: int = 0
    error: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    """USD spent on the attempts whose cost is known."""
    cost_unknown: int = 0
    """Attempts that ran and whose cost is unknown."""
    cost_avoided_usd: float = 0.0
    repairs: int = 0
    repair_successes: int = 0


@dataclass(frozen=True)
class ChainStats:
    """What a snapshot says about one chain."""

    calls: int = 0
    answered: int = 0
    local: int = 0
    """Answered by a model without a price (or priced at zero)."""
    cost_usd: float = 0.0
    cost_unknown: int = 0
    """Calls whose cost is unknown."""
    cost_avoided_usd: float = 0.0


def _usd(nano_usd: int) -> float:
    return round(nano_usd * NANO_USD, 9)


def build_chain_stats(counts: Mapping[str, Mapping[str, int]]) -> dict[str, ChainStats]:
    """ChainStats per chain (in name order) from raw counters."""
    return {
        chain: ChainStats(
            calls=int(c.get("calls", 0)),
            answered=int(c.get("answered", 0)),
            local=int(c.get("local", 0)),
            cost_usd=_usd(int(c.get("cost_nusd", 0))),
            cost_unknown=int(c.get("cost_unknown", 0)),
            cost_avoided_usd=_usd(int(c.get("avoided_nusd", 0))),
        )
        for chain, c in sorted(counts.items())
    }


def build_stats(
    counts: Mapping[str, Mapping[str, int]], latency: Mapping[str, Mapping[int, int]]
) -> dict[str, ModelStats]:
    """ModelStats per model (in name order) from raw counters and latency buckets."""
    stats = {}
    for model in sorted(set(counts) | set(latency)):
        c = counts.get(model, {})
        buckets = latency.get(model, {})
        stats[model] = ModelStats(
            **{k: int(c.get(k, 0)) for k in (*COUNT_KINDS, *TOKEN_KINDS)},
            latency_p50_ms=round(percentile(buckets, 0.50), 3),
            latency_p95_ms=round(percentile(buckets, 0.95), 3),
            cost_usd=_usd(int(c.get("cost_nusd", 0))),
            cost_unknown=int(c.get("cost_unknown", 0)),
            cost_avoided_usd=_usd(int(c.get("avoided_nusd", 0))),
            repairs=int(c.get("repairs", 0)),
            repair_successes=int(c.get("repair_successes", 0)),
        )
    return stats


_Key = TypeVar("_Key", str, int)


def _add(into: dict[_Key, int], key: _Key, n: int) -> None:
    into[key] = into.get(key, 0) + n


class ModelCounters:
    """Counters per model: ``success``, ``fallback``, ``error`` (see ``attempt_kinds``),
    tokens, and an attempt-latency histogram. This process's counters, or (fresh) what one
    call adds to the shared ones."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        """Per model: ``{kind or token kind: n}`` (read only)."""
        self.latency: dict[str, dict[int, int]] = {}
        """Per model: ``{latency bucket index: attempts}`` (read only)."""

    def record_call(
        self, attempts: Iterable[Attempt], cost_avoided_usd: float | None = None
    ) -> None:
        """Count the attempts of one finished call; ``cost_avoided_usd`` goes to the model
        that answered."""
        for attempt, kind in classify(attempts):
            counts = self.counts.setdefault(attempt.model, {})
            _add(counts, kind, 1)
            if attempt.usage is not None:
                for name in TOKEN_KINDS:
                    _add(counts, name, getattr(attempt.usage, name))
            if attempt.cost_usd is None:
                _add(counts, "cost_unknown", 1)
            elif attempt.cost_usd:
                _add(counts, "cost_nusd", nano(attempt.cost_usd))
            if attempt.repair:
                _add(counts, "repairs", 1)
                if kind == "success":
                    _add(counts, "repair_successes", 1)
            if kind == "success" and cost_avoided_usd:
                _add(counts, "avoided_nusd", nano(cost_avoided_usd))
            buckets = self.latency.setdefault(attempt.model, {})
            _add(buckets, latency_bucket(attempt.latency_ms), 1)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """The seed's shape: ``{model: {"success": n, "fallback": n, "error": n}}``."""
        return {
            model: {k: counts.get(k, 0) for k in COUNT_KINDS}
            for model, counts in sorted(self.counts.items())
        }

    def stats(self) -> dict[str, ModelStats]:
        return build_stats(self.counts, self.latency)


class ChainCounters:
    """Counters per chain: calls, answered, answered locally, cost and cost avoided."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        """Per chain: ``{kind: n}`` (read only)."""

    def record_call(self, event: RouteEvent) -> None:
        """Count one finished call."""
        counts = self.counts.setdefault(event.chain, {})
        _add(counts, "calls", 1)
        if event.status is RouteStatus.OK:
            _add(counts, "answered", 1)
            if event.local_answer:
                _add(counts, "local", 1)
        cost = call_cost(event.attempts)
        if cost is None:
            _add(counts, "cost_unknown", 1)
        elif cost:
            _add(counts, "cost_nusd", nano(cost))
        if event.cost_avoided_usd:
            _add(counts, "avoided_nusd", nano(event.cost_avoided_usd))

    def stats(self) -> dict[str, ChainStats]:
        return build_chain_stats(self.counts)


def event_usage(event: RouteEvent) -> Usage | None:
    """Tokens summed over the attempts that reported usage; None when none did."""
    reported = [a.usage for a in event.attempts if a.usage is not None]
    if not reported:
        return None
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in reported),
        completion_tokens=sum(u.completion_tokens for u in reported),
        total_tokens=sum(u.total_tokens for u in reported),
    )
