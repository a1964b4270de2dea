"""What people and Grafana see: the Prometheus endpoint, ``llm-router watch`` (JSON lines
and the live view), the [metrics] configuration, and the counters behind snapshots."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from llm_router.v1 import router_pb2
from llm_router_server import config
from llm_router_server.cli.watch_view import ViewState, render
from llm_router_server.config import BreakerPolicy, MetricsConfig
from llm_router_server.errors import ConfigError
from llm_router_server.metrics.counters import LATENCY_BUCKETS_MS, ModelCounters, percentile
from llm_router_server.types import Attempt, Category, Outcome, Usage
from tests.fakes.upstream import Answer, FakeUpstream, HttpError
from tests.server_fixtures import Serve, anthropic, ollama

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
# The CLI runs in a child process: make it import this checkout's code.
CHILD_ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'server'}:{ROOT / 'client'}"}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


async def test_prometheus_endpoint_serves_the_counters(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    local, cloud = upstream(), upstream()
    local.default = HttpError(503)
    cloud.default = Answer("fine", prompt_tokens=7, completion_tokens=3)
    server = await serve(
        [ollama(local), anthropic(cloud)],
        metrics=MetricsConfig(prometheus_listen="127.0.0.1:0", replica_id="p"),
    )
    await server.route()
    await server.route()
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    await stream.read()
    exporter = server.app.prometheus
    assert exporter is not None
    text = await asyncio.to_thread(scrape, exporter.port)
    stream.cancel()
    haiku = "anthropic/claude-haiku-4-5-20251001"
    for line in (
        f'llm_router_requests_total{{chain="default",locality="cloud",model="{haiku}",'
        'status="ok"} 2.0',
        'llm_router_fallbacks_total{chain="default",model="ollama_chat/qwen2.5:7b"} 2.0',
        'llm_router_attempts_total{chain="default",locality="local",'
        'model="ollama_chat/qwen2.5:7b",outcome="rejected",reason="provider_error"} 2.0',
        f'llm_router_tokens_total{{chain="default",kind="prompt",locality="cloud",'
        f'model="{haiku}"}} 14.0',
        f'llm_router_attempt_latency_seconds_count{{chain="default",model="{haiku}",'
        'outcome="success"} 2.0',
        "llm_router_metrics_events_dropped_total 0.0",
        "llm_router_metrics_events_published_total 2.0",
        "llm_router_watchers 1.0",
    ):
        assert line in text, line


async def test_prometheus_is_off_by_default(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    server = await serve([ollama(upstream())])
    assert server.app.prometheus is None


async def test_cli_watch_json_prints_one_message_per_line(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    up = upstream()
    up.default = Answer("fine")
    server = await serve([ollama(up)])
    await server.route(context="earlier")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "llm_router_server", "watch", "--json", "--count", "2"),
        *("--target", server.target, "--interval", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=CHILD_ENV,
    )
    assert process.stdout is not None
    first = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
    assert first["snapshot"]["models"][0]["success"] == "1"  # int64 is a JSON string
    await server.route(context="one")
    await server.route(context="two")
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    events = [json.loads(line)["event"] for line in out.decode().splitlines()]
    assert [e["context"] for e in events] == ["one", "two"]
    assert events[0]["status"] == "ROUTE_STATUS_OK" and events[0]["event_id"]


async def test_cli_watch_reports_a_bad_request_and_exits_1(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    server = await serve([ollama(upstream())])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "llm_router_server", "watch", "--json", "--target", server.target),
        *("--resume-after", "yesterday"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=CHILD_ENV,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "INVALID_ARGUMENT" in err.decode() and "resume_after_event_id" in err.decode()


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


def test_metrics_keys_load_with_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[metrics]\nredis_url = "redis://127.0.0.1:6390/1"\nbuffer_size = 50\n'
        "stream_maxlen = 500\nredis_timeout = 0.5\nwatcher_queue = 10\n"
        'prometheus_listen = "127.0.0.1:9464"\nreplica_id = "file"\n'
    )
    cfg = config.load(path, env={"LLM_ROUTER_REPLICA_ID": "env"})
    assert cfg.metrics == MetricsConfig(
        redis_url="redis://127.0.0.1:6390/1",
        replica_id="env",
        buffer_size=50,
        stream_maxlen=500,
        redis_timeout=0.5,
        watcher_queue=10,
        prometheus_listen="127.0.0.1:9464",
    )
    example = config.load(ROOT / "config.example.toml", env={}).metrics
    assert example == MetricsConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("buffer_size = 0", "metrics.buffer_size: must be > 0"),
        ('stream_maxlen = "big"', "metrics.stream_maxlen: expected int"),
        ("watcher_queue = -1", "metrics.watcher_queue: must be > 0"),
        ("redis_timeout = 0", "metrics.redis_timeout: must be > 0"),
        ('redis_url = "http://127.0.0.1:6379"', "metrics.redis_url: expected redis://"),
        ('prometheus_listen = "9464"', "metrics.prometheus_listen: expected host:port"),
        ('prometheus_listen = "127.0.0.1:99999"', "metrics.prometheus_listen"),
        ('redis_host = "x"', "unknown key(s): 'metrics.redis_host'"),
    ],
)
def test_bad_metrics_values_stop_start_up_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[metrics]\n{text}\n")
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert message in str(info.value)


async def test_prometheus_port_in_use_stops_start_up(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await serve(
                [ollama(upstream())],
                metrics=MetricsConfig(prometheus_listen=f"127.0.0.1:{port}"),
            )


async def test_circuit_changes_reach_watchers_snapshots_and_prometheus(
    serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """A primary that keeps failing opens its circuit: a watcher is told as it happens
    (a CircuitChange message), snapshots show the model OPEN with the reason, and
    Prometheus has the state gauge and the transition counter."""
    local, cloud = upstream(), upstream()
    local.default = HttpError(503)
    cloud.default = Answer("fine")
    server = await serve(
        [ollama(local), anthropic(cloud)],
        metrics=MetricsConfig(prometheus_listen="127.0.0.1:0"),
        breaker=BreakerPolicy(failure_threshold=2, cool_down_seconds=60),
    )
    stream = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    first = await stream.read()
    assert first.WhichOneof("kind") == "snapshot"
    for _ in range(3):
        await server.route()
    kinds = []
    change = None
    while change is None:
        message = await asyncio.wait_for(stream.read(), 5)
        kinds.append(message.WhichOneof("kind"))
        if message.WhichOneof("kind") == "circuit":
            change = message.circuit
    assert change.model == "ollama_chat/qwen2.5:7b"
    assert change.api_base == local.url
    assert (change.from_state, change.to_state) == (
        router_pb2.CIRCUIT_STATE_CLOSED,
        router_pb2.CIRCUIT_STATE_OPEN,
    )
    assert "503" in change.reason and change.cool_down_seconds == 60
    stream.cancel()

    again = server.stub.WatchMetrics(router_pb2.WatchMetricsRequest())
    snapshot = (await again.read()).snapshot
    again.cancel()
    by_model = {m.model: m for m in snapshot.models}
    assert by_model["ollama_chat/qwen2.5:7b"].circuit == router_pb2.CIRCUIT_STATE_OPEN
    assert "503" in by_model["ollama_chat/qwen2.5:7b"].circuit_reason
    assert (
        by_model["anthropic/claude-haiku-4-5-20251001"].circuit == router_pb2.CIRCUIT_STATE_CLOSED
    )

    exporter = server.app.prometheus
    assert exporter is not None
    text = await asyncio.to_thread(scrape, exporter.port)
    assert (
        f'llm_router_circuit_state{{api_base="{local.url}",model="ollama_chat/qwen2.5:7b"}} 2.0'
        in text
    )
    assert (
        'llm_router_circuit_transitions_total{model="ollama_chat/qwen2.5:7b",state="open"} 1.0'
        in text
    )
