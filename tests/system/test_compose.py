"""compose.yaml wires the router to Redis and Ollama the way the configuration reads them."""

from __future__ import annotations

import re
from typing import Any

import yaml

from llm_router_server import config as config_module
from llm_router_server.config import ServerConfig
from tests.support.checkout import ROOT


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return data


def test_the_router_environment_reaches_ollama_and_redis_by_service_name() -> None:
    services = compose()["services"]
    env = services["router"]["environment"]
    assert set(env) >= {"OLLAMA_API_BASE", "LLM_ROUTER_REDIS_URL", "ANTHROPIC_API_KEY"}
    loaded = config_module.load(None, env={k: str(v) for k, v in env.items()})
    first = loaded.chains[loaded.default_chain].models[0]
    assert first.model.startswith("ollama_chat/")
    assert first.api_base == "http://ollama:11434" and "ollama" in services
    assert loaded.metrics.redis_url == "redis://redis:6379/0" and "redis" in services
    assert loaded.server.listen == "0.0.0.0:50051"


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_stopping_leaves_the_server_its_grace_period() -> None:
    grace = compose()["services"]["router"]["stop_grace_period"]
    match = re.fullmatch(r"(\d+)s", grace)
    assert match and int(match.group(1)) > ServerConfig.grace_seconds


def test_the_pulled_model_is_the_default_chains_local_model() -> None:
    pull = compose()["services"]["ollama-pull"]["entrypoint"]
    default = config_module.load(None, env={}).chains["default"].models[0].model
    assert default == f"ollama_chat/{pull[-1]}"
