"""deploy/k8s/: valid against the Kubernetes schemas (``kubernetes-validate --strict``, which
ships them: nothing is downloaded), and consistent with the server: the configuration
loads, probes and ports match it, selectors match the pods, secrets come from a Secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from llm_router_server import config as config_module
from tests.support.checkout import ROOT

K8S = ROOT / "deploy" / "k8s"
SECRET_EXAMPLE = ROOT / "deploy" / "k8s-secret.example.yaml"
MANIFESTS = [*sorted(K8S.glob("*.yaml")), SECRET_EXAMPLE]


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def router_container() -> dict[str, Any]:
    [container] = resources()[("Deployment", "llm-router")]["spec"]["template"]["spec"][
        "containers"
    ]
    return container


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    result = validate(*MANIFESTS)
    print(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(resources())


def test_the_validation_rejects_a_field_kubernetes_does_not_know(tmp_path: Path) -> None:
    broken = tmp_path / "deployment.yaml"
    text = (K8S / "deployment.yaml").read_text(encoding="utf-8")
    broken.write_text(text.replace("readinessProbe:", "readynessProbe:"))
    result = validate(broken)
    assert result.returncode != 0
    assert "readynessProbe" in result.stdout + result.stderr


def test_selectors_match_the_pods_and_the_budget_leaves_replicas_serving() -> None:
    found = resources()
    deployment = found[("Deployment", "llm-router")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = found[("Service", "llm-router")]
    assert service["spec"]["clusterIP"] == "None"  # headless: clients see every pod
    assert service["spec"]["selector"].items() <= labels.items()
    budget = found[("PodDisruptionBudget", "llm-router")]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    redis = found[("Deployment", "llm-router-redis")]
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert found[("Service", "llm-router-redis")]["spec"]["selector"].items() <= (
        redis_labels.items()
    )


def test_probes_are_native_grpc_on_the_configured_port_and_resources_are_requested(
    tmp_path: Path,
) -> None:
    container = router_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
    config = loaded_config(tmp_path)
    assert config.server.listen == f"0.0.0.0:{ports['grpc']}"
    assert config.metrics.prometheus_listen == f"0.0.0.0:{ports['metrics']}"
    annotations = resources()[("Deployment", "llm-router")]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    for kind, name in [("Deployment", "llm-router"), ("Deployment", "llm-router-redis")]:
        for c in resources()[(kind, name)]["spec"]["template"]["spec"]["containers"]:
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
            assert "memory" in c["resources"]["limits"], name
    grace = resources()[("Deployment", "llm-router")]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace > config.server.grace_seconds


def deployment_env() -> dict[str, str]:
    """The environment the Deployment gives the router, with each Secret value replaced by a
    stand-in of the right shape and each pod field by an example."""
    env = {}
    for item in router_container()["env"]:
        source = item.get("valueFrom", {})
        if "secretKeyRef" in source:
            env[item["name"]] = f"from-secret-{source['secretKeyRef']['key']}-0123456789"
        elif "fieldRef" in source:
            env[item["name"]] = "llm-router-5d8f7c9b4-x2x7q"
        else:
            env[item["name"]] = item["value"]
    return env


def loaded_config(tmp_path: Path) -> config_module.Config:
    """The ConfigMap's TOML as the server loads it where the Deployment mounts it, with the
    Deployment's environment."""
    container = router_container()
    assert container["args"] == ["--config", "/etc/llm-router/llm-router.toml"]
    [mount] = container["volumeMounts"]
    assert mount["mountPath"] == "/etc/llm-router"
    path = tmp_path / "llm-router.toml"
    path.write_text(resources()[("ConfigMap", "llm-router")]["data"][path.name], "utf-8")
    return config_module.load(str(path), env=deployment_env())


def test_the_configmap_loads_with_the_deployments_environment(tmp_path: Path) -> None:
    config = loaded_config(tmp_path)
    env = deployment_env()
    assert config.metrics.redis_url == "redis://llm-router-redis:6379/0"
    assert config.metrics.replica_id == env["LLM_ROUTER_REPLICA_ID"]
    assert config.auth.tokens == (env["LLM_ROUTER_AUTH_TOKENS"],)
    first = config.chains[config.default_chain].models[0]
    assert first.model.startswith("ollama_chat/") and first.api_base == env["OLLAMA_API_BASE"]


def test_secrets_come_from_the_secret_the_example_describes() -> None:
    refs = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in router_container()["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert set(refs) == {"ANTHROPIC_API_KEY", "LLM_ROUTER_AUTH_TOKENS"}
    secret = resources()[("Secret", "llm-router")]
    assert {r["name"] for r in refs.values()} == {"llm-router"}
    assert {r["key"] for r in refs.values()} == set(secret["stringData"])
    assert not any(p.name.startswith("secret") for p in K8S.iterdir())
