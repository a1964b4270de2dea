"""docs/clients.md, run as written: every ``docs-check:NAME`` block (shell or Python) runs
against a real ``llm-router serve`` process with TLS and a bearer token (``plain-*`` blocks
against one without), with only the port and the tools' folder substituted; every
``docs-excerpt:PATH`` block is verbatim from its file; no other code block goes unchecked
unless marked ``docs-show`` (installing from a remote)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.certs import make_pki
from tests.support.checkout import ROOT, child_env
from tests.support.processes import ServerProcess
from tests.support.serve_upstream import chooser
from tests.support.upstream import FakeUpstream

DOC = ROOT / "docs" / "clients.md"
BIN = Path(sys.executable).parent
DOC_TARGET = "127.0.0.1:50051"
TOKEN = "tok-docs-0123456789abcdef"
ANSWER = '{"action": "restart"}'
OLLAMA = "ollama_chat/qwen2.5:7b"
BLOCK = re.compile(r"^```(\w+) docs-check:(\S+)\n(.*?)^```", re.M | re.S)
EXCERPT = re.compile(r"^```\w+ docs-excerpt:(\S+)\n(.*?)^```", re.M | re.S)
FENCE = re.compile(r"^```(\w+)([^\n]*)$", re.M)
GO = shutil.which("go") or "/usr/local/go/bin/go"

pytestmark = pytest.mark.timeout(180)


def blocks() -> dict[str, tuple[str, str]]:
    """name -> (language, text) of every docs-check block."""
    text = DOC.read_text(encoding="utf-8")
    return {m.group(2): (m.group(1), m.group(3)) for m in BLOCK.finditer(text)}


@dataclass
class Servers:
    secure: ServerProcess
    plain: ServerProcess
    workdir: Path

    def run(self, name: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        language, text = blocks()[name]
        server = self.plain if name.startswith("plain-") else self.secure
        text = text.replace(DOC_TARGET, server.target)
        text = re.sub(
            r"\.venv/bin/(llm-router)?",
            lambda m: f"{sys.executable} -m llm_router_server" if m.group(1) else f"{BIN}/",
            text,
        )
        command = ["bash", "-c", text] if language == "sh" else [sys.executable, "-c", text]
        env = child_env(
            {
                "LLM_ROUTER_TOKEN": TOKEN,
                "LLM_ROUTER_TARGET": server.target,
                "LLM_ROUTER_CA": "certs/ca.pem",
                "PATH": os.pathsep.join([os.environ.get("PATH", ""), str(Path(GO).parent)]),
            }
        )
        result = subprocess.run(
            command,
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        print(f"$ {text}\n{result.stdout}{result.stderr}[exit {result.returncode}]")
        return result


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("docs")
    pki = make_pki(workdir / "certs")
    (workdir / "certs" / "token").write_text(TOKEN + "\n")
    (workdir / "client").symlink_to(ROOT / "client")  # for `go -C client/go run ./example`
    with FakeUpstream() as up:
        up.choose = chooser(ANSWER)
        chains = f"""
[breaker]
enabled = false

[chains.default]
models = [
  {{ model = "{OLLAMA}", timeout = 10, api_base = "{up.url}" }},
  {{ model = "anthropic/claude-haiku-4-5-20251001", timeout = 10, api_base = "{up.url}" }},
]
"""
        secure_config = workdir / "secure.toml"
        secure_config.write_text(
            f'[server]\nlisten = "127.0.0.1:0"\ngrace_seconds = 2\n\n[auth]\ntokens = ["{TOKEN}"]\n'
            f'\n[tls]\ncert_file = "{pki.server_cert}"\nkey_file = "{pki.server_key}"\n{chains}'
        )
        plain_config = workdir / "plain.toml"
        plain_config.write_text(f'[server]\nlisten = "127.0.0.1:0"\ngrace_seconds = 2\n{chains}')
        secure = ServerProcess(secure_config).wait_logged()
        try:
            plain = ServerProcess(plain_config).wait_logged()
            try:
                yield Servers(secure, plain, workdir)
            finally:
                plain.stop()
        finally:
            secure.stop()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def json_messages(text: str) -> list[Any]:
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) != -1:
        value, at = decoder.raw_decode(text, start)
        found.append(value)
    return found


# -- one check per block -----------------------------------------------------------------


def check_python_tls(s: Servers) -> None:
    assert ok(s.run("python-tls")).strip() == f"{OLLAMA} {{'action': 'restart'}}"


def check_python_errors(s: Servers) -> None:
    lines = ok(s.run("python-errors")).splitlines()
    assert lines[0].startswith("UnauthenticatedError: the server requires a bearer token")
    assert lines[1].startswith("ConnectionFailedError: the server closed the connection at once")


def check_python_watch(s: Servers) -> None:
    [line] = ok(s.run("python-watch")).splitlines()
    status, model, replica, event_id = line.split()
    assert (status, model) == ("ok", OLLAMA) and replica and event_id


def check_go_example(s: Servers) -> None:
    assert f"{OLLAMA} answered: action=restart" in ok(s.run("go-example", timeout=170))


def check_cli_route(s: Servers) -> None:
    result = s.run("cli-route")
    assert json.loads(ok(result)) == json.loads(ANSWER)
    assert f"answered by {OLLAMA}" in result.stderr


def check_cli_env(s: Servers) -> None:
    health, route = ok(s.run("cli-env")).splitlines()
    assert health == f"{s.secure.target}: SERVING"
    assert json.loads(route)["model_used"] == OLLAMA


def check_cli_watch(s: Servers) -> None:
    """The stream prints its snapshot, then the event of a call made while it is open."""
    done: list[subprocess.CompletedProcess[str]] = []
    watcher = threading.Thread(target=lambda: done.append(s.run("cli-watch", timeout=60)))
    watcher.start()
    # Calls until the watcher's --count 1 is met (it may open after the first call).
    for _ in range(40):
        ok(s.run("cli-route"))
        watcher.join(1.5)
        if not watcher.is_alive():
            break
    watcher.join(60)
    messages = json_messages(ok(done[0]))
    assert "snapshot" in messages[0]
    assert messages[-1]["event"]["status"] == "ROUTE_STATUS_OK"


def check_cli_no_token(s: Servers) -> None:
    result = s.run("cli-no-token")
    assert result.returncode == 1
    assert "UNAUTHENTICATED: missing bearer token" in result.stderr
    assert "LLM_ROUTER_TOKEN" in result.stderr


def check_grpcurl_tls_route(s: Servers) -> None:
    reply = json.loads(ok(s.run("grpcurl-tls-route")))
    assert reply["content"] == json.loads(ANSWER) and reply["model_used"] == OLLAMA


def check_grpcurl_tls_health(s: Servers) -> None:
    assert json.loads(ok(s.run("grpcurl-tls-health")))["status"] == "SERVING"


def check_buf_tls_route(s: Servers) -> None:
    reply = json.loads(ok(s.run("buf-tls-route")))
    assert reply["modelUsed"] == OLLAMA and reply["rawText"] == ANSWER


def check_plain(name: str) -> Callable[[Servers], None]:
    def check(s: Servers) -> None:
        reply = json.loads(ok(s.run(name)))
        assert reply.get("model_used", reply.get("modelUsed")) == OLLAMA

    return check


CHECKS: dict[str, Callable[[Servers], None]] = {
    "python-tls": check_python_tls,
    "python-errors": check_python_errors,
    "python-watch": check_python_watch,
    "go-example": check_go_example,
    "cli-route": check_cli_route,
    "cli-env": check_cli_env,
    "cli-watch": check_cli_watch,
    "cli-no-token": check_cli_no_token,
    "grpcurl-tls-route": check_grpcurl_tls_route,
    "grpcurl-tls-health": check_grpcurl_tls_health,
    "buf-tls-route": check_buf_tls_route,
    "plain-grpcurl-route": check_plain("plain-grpcurl-route"),
    "plain-buf-route": check_plain("plain-buf-route"),
}


def test_every_doc_block_has_a_check_and_every_check_a_block() -> None:
    assert sorted(blocks()) == sorted(CHECKS)


def test_every_code_block_is_checked_excerpted_or_marked_as_shown_only() -> None:
    for language, info in FENCE.findall(DOC.read_text(encoding="utf-8")):
        if language in ("sh", "python", "go"):
            marker = info.strip().split(":")[0]
            assert marker in ("docs-check", "docs-excerpt", "docs-show"), (language, info)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_doc_block_works_against_a_real_server(name: str, servers: Servers) -> None:
    """The block ``name`` of docs/clients.md, run as written, does what the page says."""
    CHECKS[name](servers)


def test_the_python_snippets_pass_mypy_strict(tmp_path: Path) -> None:
    """With the client and the stubs its ``typing`` extra names, as a user has them."""
    files = []
    for name, (language, text) in blocks().items():
        if language == "python":
            files.append(tmp_path / f"{name.replace('-', '_')}.py")
            files[-1].write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *map(str, files)],
        cwd=tmp_path,
        env={**child_env(), "MYPYPATH": str(ROOT / "client")},
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_doc_excerpts_are_verbatim_from_their_files() -> None:
    excerpts = EXCERPT.findall(DOC.read_text(encoding="utf-8"))
    assert excerpts
    for path, text in excerpts:
        source = (DOC.parent / ".." / path).resolve()
        assert text in source.read_text(encoding="utf-8"), f"excerpt of {path} drifted"


def test_the_doc_names_the_go_module_of_go_mod() -> None:
    module = (ROOT / "client" / "go" / "go.mod").read_text().split()[1]
    text = DOC.read_text(encoding="utf-8")
    assert f"`{module}`" in text and f"go get {module}@latest" in text


def test_no_shipped_text_says_the_service_has_no_authentication() -> None:
    """The compose file and both clients' docs describe tokens and TLS, not a service
    without authentication."""
    for path in [
        "compose.yaml",
        "client/go/llmrouter/client.go",
        "client/llm_router/client.py",
        "client/llm_router/__init__.py",
    ]:
        text = (ROOT / path).read_text(encoding="utf-8")
        for stale in (
            "There is no\n# authentication",
            "has no authentication",
            "channel is insecure",
        ):
            assert stale not in text, (path, stale)
