"""The counters behind snapshots: the seed's shape, latency percentiles and tokens."""

from __future__ import annotations

from llm_router_server.metrics.counters import LATENCY_BUCKETS_MS, ModelCounters, percentile
from llm_router_server.types import Attempt, Category, Outcome, Usage


def test_counters_keep_the_seed_shape_and_add_latency_and_tokens() -> None:
    counters = ModelCounters()
    ok = Attempt("m", Outcome.SUCCESS, Category.NONE, "", 80.0, Usage(5, 2, 7))
    for _ in range(19):
        counters.record_call((ok,))
    counters.record_call((Attempt("m", Outcome.SUCCESS, Category.NONE, "", 5000.0),))
    assert counters.snapshot() == {"m": {"success": 20, "fallback": 0, "error": 0}}
    stats = counters.stats()["m"]
    assert 50 < stats.latency_p50_ms <= 100
    assert (stats.prompt_tokens, stats.total_tokens) == (95, 133)


def test_percentile_interpolates_inside_a_bucket() -> None:
    index = LATENCY_BUCKETS_MS.index(200)
    assert percentile({index: 10}, 0.5) == 150  # bucket (100, 200]
    assert percentile({}, 0.5) == 0.0
    assert percentile({len(LATENCY_BUCKETS_MS): 1}, 0.95) == LATENCY_BUCKETS_MS[-1]
