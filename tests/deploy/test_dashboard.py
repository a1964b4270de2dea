"""The Grafana dashboard (deploy/grafana/) asks only for metrics a real server exports, and
compose.yaml provisions it with a Prometheus that scrapes the router."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml

from llm_router import AsyncRouterClient
from llm_router_server.config import BreakerPolicy, Config, MetricsConfig
from tests.support.apps import StartApp, chain
from tests.support.checkout import ROOT
from tests.support.server import anthropic, ollama
from tests.support.upstream import Answer, FakeUpstream, HttpError

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "llm-router.json"
METRIC = re.compile(r"\b(llm_router_[a-z_]+)")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return data


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


async def test_every_metric_the_dashboard_queries_is_exported(
    start_app: StartApp, upstream: Callable[[], FakeUpstream]
) -> None:
    """A server with a failing local model (its circuit opens) and a cloud model that
    answers exports every series the panels ask for."""
    local, cloud = upstream(), upstream()
    local.default = HttpError(500)
    cloud.default = Answer("fine", prompt_tokens=7, completion_tokens=3)
    config = Config(
        chains=chain(ollama(local), anthropic(cloud)),
        metrics=MetricsConfig(prometheus_listen="127.0.0.1:0"),
        breaker=BreakerPolicy(failure_threshold=1),
    )
    app, target = await start_app(config)
    async with AsyncRouterClient(target) as client:
        for _ in range(2):
            await client.route([{"role": "user", "content": "hi"}])
    assert app.prometheus is not None
    exported = set(METRIC.findall(await asyncio.to_thread(scrape, app.prometheus.port)))
    asked = {m for q in queries() for m in METRIC.findall(q)}
    assert asked, "the dashboard queries no llm_router metric"
    assert asked <= exported, f"not exported: {sorted(asked - exported)}"


def test_the_dashboard_covers_what_a_team_looks_at() -> None:
    text = " ".join(queries())
    for needed in (
        "llm_router_requests_total",  # calls by outcome, local share
        "llm_router_fallbacks_total",  # fallback rate
        "llm_router_attempt_latency_seconds_bucket",  # latency percentiles per model
        "llm_router_tokens_total",
        "llm_router_circuit_state",
    ):
        assert needed in text, needed
    assert "histogram_quantile(0.95, sum by (le, model)" in text
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_compose_provisions_prometheus_and_grafana_with_the_dashboard() -> None:
    services = compose()["services"]
    listen = services["router"]["environment"]["LLM_ROUTER_PROMETHEUS_LISTEN"]
    port = listen.rsplit(":", 1)[1]
    prometheus_config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    mounted = {v.split(":")[0]: v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert mounted["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    scrape_config = yaml.safe_load(prometheus_config.read_text(encoding="utf-8"))
    [job] = scrape_config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"router:{port}"]

    grafana_mounts = {v.split(":")[0]: v.split(":")[1] for v in services["grafana"]["volumes"]}
    provisioning = GRAFANA / "provisioning"
    assert grafana_mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "llm-router.yaml").read_text())
    assert (
        grafana_mounts["./deploy/grafana/dashboards"]
        == providers["providers"][0]["options"]["path"]
    )
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    [variable] = [v for v in dashboard()["templating"]["list"] if v["name"] == "datasource"]
    assert variable["current"]["value"] == source["uid"]
