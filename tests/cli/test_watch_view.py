"""The live view of ``llm-router watch``: models, rates, events and circuit states on screen."""

from __future__ import annotations

from rich.console import Console

from llm_router.v1 import router_pb2
from llm_router_server.cli.watch_view import ViewState, render


def test_live_view_shows_models_rates_and_events() -> None:
    state = ViewState()
    snapshot = router_pb2.MetricsSnapshot(
        models=[
            router_pb2.ModelCounters(
                model="ollama_chat/qwen2.5:7b",
                success=3,
                fallback=1,
                latency_p50_ms=120,
                latency_p95_ms=900,
                total_tokens=42,
            )
        ],
        cluster_wide=True,
        replica_id="r1",
    )
    state.update(router_pb2.WatchMetricsResponse(snapshot=snapshot))
    event = router_pb2.RouteEvent(
        status=router_pb2.ROUTE_STATUS_OK,
        chain="default",
        context="nightly",
        model_used="claude-haiku",
        replica_id="r2",
        attempts=[
            router_pb2.Attempt(
                model="ollama_chat/qwen2.5:7b", outcome=router_pb2.ATTEMPT_OUTCOME_REJECTED
            ),
            router_pb2.Attempt(model="claude-haiku", outcome=router_pb2.ATTEMPT_OUTCOME_SUCCESS),
        ],
    )
    state.update(router_pb2.WatchMetricsResponse(event=event, missed_events=4))
    console = Console(record=True, width=160)
    console.print(render(state, "127.0.0.1:50051"))
    screen = console.export_text()
    assert "cluster-wide" in screen and "missed 4 event(s)" in screen
    assert "nightly" in screen and "qwen2.5:7b:rejected > claude-haiku:success" in screen
    qwen = next(line for line in screen.splitlines() if line.strip().startswith("│ ollama"))
    assert "40%" in qwen and "120" in qwen and "900" in qwen  # 2 of 5 tries fell back


def test_live_view_shows_circuit_state_from_snapshots_and_changes() -> None:
    state = ViewState()
    snapshot = router_pb2.MetricsSnapshot(
        models=[
            router_pb2.ModelCounters(
                model="local", success=1, circuit=router_pb2.CIRCUIT_STATE_CLOSED
            )
        ]
    )
    state.update(router_pb2.WatchMetricsResponse(snapshot=snapshot))
    change = router_pb2.CircuitChange(
        model="local",
        from_state=router_pb2.CIRCUIT_STATE_CLOSED,
        to_state=router_pb2.CIRCUIT_STATE_OPEN,
    )
    state.update(router_pb2.WatchMetricsResponse(circuit=change))
    console = Console(record=True, width=160)
    console.print(render(state, "127.0.0.1:50051"))
    local = next(line for line in console.export_text().splitlines() if "│ local" in line)
    assert local.rstrip(" │").endswith("open")
