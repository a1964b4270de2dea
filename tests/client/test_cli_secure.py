"""``llm-router route``, ``health`` and ``watch`` against a TLS + token server, with the
connection given by flags, by LLM_ROUTER_* variables, or both (a flag wins)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from tests.support.apps import TOKEN, SecureServe
from tests.support.certs import PKI
from tests.support.processes import run_command, start_command

pytestmark = pytest.mark.timeout(90)


async def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = await asyncio.to_thread(run_command, *args, env=env)
    print(f"$ llm-router {' '.join(args)}\n{result.stdout}{result.stderr}[{result.returncode}]")
    return result


async def test_route_with_flags(secure_serve: SecureServe, pki: PKI) -> None:
    server = await secure_serve(answer='{"action": "restart"}')
    result = await cli(
        "route", "--target", server.target, "--ca", str(pki.ca), "--token", TOKEN,
        "--schema", '{"type": "object"}', "nginx is down",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"action": "restart"}
    assert "answered by ollama_chat/qwen2.5:7b" in result.stderr


async def test_route_with_environment_and_a_token_file(
    secure_serve: SecureServe, pki: PKI, tmp_path: Path
) -> None:
    server = await secure_serve(mtls=True, answer="from env")
    (tmp_path / "token").write_text(TOKEN)
    env = {
        "LLM_ROUTER_TARGET": server.target,
        "LLM_ROUTER_TOKEN_FILE": str(tmp_path / "token"),
        "LLM_ROUTER_CA": str(pki.ca),
        "LLM_ROUTER_CERT": str(pki.client_cert),
        "LLM_ROUTER_KEY": str(pki.client_key),
    }
    result = await cli("route", "hi", env=env)
    assert (result.returncode, result.stdout.strip()) == (0, "from env"), result.stderr


async def test_a_flag_wins_over_the_environment(secure_serve: SecureServe, pki: PKI) -> None:
    server = await secure_serve(answer="flag")
    env = {"LLM_ROUTER_TOKEN": "wrong-0123456789abcdef", "LLM_ROUTER_CA": str(pki.ca)}
    wrong = await cli("route", "--target", server.target, "hi", env=env)
    assert wrong.returncode == 1
    assert "UNAUTHENTICATED" in wrong.stderr and "did not accept this token" in wrong.stderr
    right = await cli("route", "--target", server.target, "--token", TOKEN, "hi", env=env)
    assert (right.returncode, right.stdout.strip()) == (0, "flag"), right.stderr


async def test_route_explains_a_missing_token_and_plaintext_against_tls(
    secure_serve: SecureServe, pki: PKI
) -> None:
    server = await secure_serve()
    no_token = await cli("route", "--target", server.target, "--ca", str(pki.ca), "hi")
    assert no_token.returncode == 1
    assert "UNAUTHENTICATED: missing bearer token" in no_token.stderr
    assert "--token / LLM_ROUTER_TOKEN" in no_token.stderr
    plaintext = await cli("route", "--target", server.target, "--token", TOKEN, "hi")
    assert plaintext.returncode == 1
    assert "it probably serves TLS" in plaintext.stderr and "Socket closed" in plaintext.stderr
    missing = await cli("route", "--target", server.target, "--ca", "/nonexistent/ca.pem", "hi")
    assert missing.returncode == 2
    assert "cannot read the CA file '/nonexistent/ca.pem'" in missing.stderr


async def test_health_over_tls_and_its_hint_over_plaintext(
    secure_serve: SecureServe, pki: PKI
) -> None:
    server = await secure_serve()
    ok = await cli("health", "--target", server.target, "--ca", str(pki.ca))
    assert (ok.returncode, ok.stdout.strip()) == (0, f"{server.target}: SERVING"), ok.stderr
    plain = await cli("health", "--target", server.target)
    assert plain.returncode == 1
    assert f"{server.target} (plaintext): UNAVAILABLE" in plain.stderr
    assert "probably serves TLS" in plain.stderr


async def test_watch_json_over_tls_with_a_token(secure_serve: SecureServe, pki: PKI) -> None:
    server = await secure_serve()
    env = {
        "LLM_ROUTER_TARGET": server.target,
        "LLM_ROUTER_TOKEN": TOKEN,
        "LLM_ROUTER_CA": str(pki.ca),
    }
    watch = await start_command(
        "watch", "--json", "--count", "1", "--interval", "0", "--context", "cli.watch", env=env
    )
    assert watch.stdout is not None
    first = json.loads(await asyncio.wait_for(watch.stdout.readline(), 30))
    assert "snapshot" in first
    routed = await cli("route", "--context", "cli.watch", "hi", env=env)
    assert routed.returncode == 0, routed.stderr
    out, err = await asyncio.wait_for(watch.communicate(), 30)
    assert watch.returncode == 0, err.decode()
    [event] = [json.loads(line)["event"] for line in out.decode().splitlines()]
    assert event["context"] == "cli.watch" and event["status"] == "ROUTE_STATUS_OK"


async def test_watch_without_the_token_exits_1_with_the_hint(
    secure_serve: SecureServe, pki: PKI
) -> None:
    server = await secure_serve()
    result = await cli("watch", "--json", "--target", server.target, "--ca", str(pki.ca))
    assert result.returncode == 1
    assert "UNAUTHENTICATED" in result.stderr and "LLM_ROUTER_TOKEN" in result.stderr
