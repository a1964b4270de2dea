"""The image's HEALTHCHECK (``llm-router health --local``) passes in every mode the server
runs in, with only the environment the server itself has: plaintext, bearer tokens, TLS
(also with a certificate that does not name 127.0.0.1), mTLS; and fails when the server is
down."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from llm_router.connection import from_arguments
from llm_router_server import config as config_module
from llm_router_server.cli.commands import build_parser
from llm_router_server.cli.connect import local_connection
from tests.support.apps import StartApp
from tests.support.certs import PKI, make_pki
from tests.support.checkout import ROOT
from tests.support.net import free_port
from tests.support.processes import run_command
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.timeout(90)
TOKEN = "tok-0123456789abcdef-secret"


def dockerfile_healthcheck() -> tuple[list[str], dict[str, str]]:
    """The HEALTHCHECK command of the Dockerfile and the ENV the image sets."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    [command] = re.findall(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.M)
    env = dict(re.findall(r"(LLM_ROUTER_\w+)=(\S+)", "".join(re.findall(r"^ENV .*$", text, re.M))))
    return json.loads(command), env


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK command, run as the container runs it: with the image's
    environment plus the container's (``env``)."""
    command, image_env = dockerfile_healthcheck()
    assert command[0] == "llm-router"
    return run_command(*command[1:], env={**image_env, **env}, timeout=30)


def test_the_image_checks_health_with_local() -> None:
    command, env = dockerfile_healthcheck()
    assert command == ["llm-router", "health", "--local"]
    assert env["LLM_ROUTER_LISTEN"] == "0.0.0.0:50051"


@pytest.mark.parametrize(
    ("listen", "target"),
    [
        ("0.0.0.0:50051", "127.0.0.1:50051"),
        ("[::]:50051", "[::1]:50051"),
        ("10.1.2.3:7000", "10.1.2.3:7000"),
    ],
)
def test_local_reads_a_wildcard_listen_address_as_loopback(
    listen: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLM_ROUTER_CONFIG", raising=False)
    monkeypatch.setenv("LLM_ROUTER_LISTEN", listen)
    args = build_parser().parse_args(["health", "--local"])
    assert local_connection(args, from_arguments(args, env={})).target == target


async def serving(start_app: StartApp, config: Path | None, env: dict[str, str]) -> str:
    """Start the server the way ``serve`` reads ``config`` and ``env``; return its port."""
    loaded = config_module.load(str(config) if config else None, env={**env})
    _, target = await start_app(loaded)
    return target


def tls_config(tmp_path: Path, pki: PKI, mtls: bool = False) -> Path:
    path = tmp_path / "llm-router.toml"
    path.write_text(
        f'[tls]\ncert_file = "{pki.server_cert}"\nkey_file = "{pki.server_key}"\n'
        + (f'client_ca_file = "{pki.ca}"\n' if mtls else "")
    )
    return path


@pytest.mark.parametrize("mode", ["plaintext", "tokens", "tls", "tls-other-name", "mtls"])
async def test_the_healthcheck_passes_in_every_mode(
    mode: str, start_app: StartApp, upstream: Callable[[], FakeUpstream], tmp_path: Path
) -> None:
    port = free_port()
    env = {"LLM_ROUTER_LISTEN": f"127.0.0.1:{port}"}
    config = None
    if mode == "tokens":
        env["LLM_ROUTER_AUTH_TOKENS"] = TOKEN
    if mode.startswith(("tls", "mtls")):
        names = "DNS:router.internal" if mode == "tls-other-name" else "DNS:localhost,IP:127.0.0.1"
        pki = make_pki(tmp_path / "pki", names=names)
        config = tls_config(tmp_path, pki, mtls=mode == "mtls")
        env["LLM_ROUTER_CONFIG"] = str(config)
    await serving(start_app, config, env)
    if mode == "mtls":
        refused = await asyncio.to_thread(healthcheck, env)
        assert refused.returncode == 2
        assert "requires client certificates" in refused.stderr
        assert "LLM_ROUTER_CERT" in refused.stderr
        env |= {"LLM_ROUTER_CERT": str(pki.client_cert), "LLM_ROUTER_KEY": str(pki.client_key)}
    result = await asyncio.to_thread(healthcheck, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"127.0.0.1:{port}: SERVING"


def test_the_healthcheck_fails_when_nothing_serves() -> None:
    result = healthcheck({"LLM_ROUTER_LISTEN": f"127.0.0.1:{free_port()}"})
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr and "nothing listens" in result.stderr
