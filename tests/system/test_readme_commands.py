"""The documented grpcurl and buf curl commands, run as written against a real server.

Every fenced block marked ``sh readme-check:NAME`` in README.md (the one call) or
docs/debugging.md (the rest) is run with bash, with only the port
(``127.0.0.1:50051``) and the tools' folder (``.venv/bin/``) substituted, against
the real server started as a process (``llm_router_server serve``) with
``FakeUpstream`` behind it. Checks look at the
essentials of the output, so new fields in the JSON do not break them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_router import RouterClient
from tests.support.checkout import ROOT, child_env
from tests.support.config_files import config_file
from tests.support.processes import ServerProcess
from tests.support.serve_upstream import chooser
from tests.support.upstream import Behaviour, FakeUpstream, HttpError

README = ROOT / "README.md"
# Where the checked commands are written: the README's one call, the rest in docs/.
DOCUMENTS = (README, ROOT / "docs" / "debugging.md")
BIN = Path(sys.executable).parent
README_TARGET = "127.0.0.1:50051"
ANSWER = '{"action": "restart"}'
OLLAMA = "ollama_chat/qwen2.5:7b"
HAIKU = "anthropic/claude-haiku-4-5-20251001"
EXCERPT = re.compile(r"^```\w+ readme-excerpt:(\S+)\n(.*?)^```", re.M | re.S)
BLOCK = re.compile(r"^```sh readme-check:(\S+)\n(.*?)^```", re.M | re.S)

pytestmark = pytest.mark.timeout(120)


def readme_commands() -> dict[str, str]:
    found: dict[str, str] = {}
    for document in DOCUMENTS:
        for m in BLOCK.finditer(document.read_text(encoding="utf-8")):
            assert m.group(1) not in found, f"readme-check:{m.group(1)} is written twice"
            found[m.group(1)] = m.group(2)
    return found


@dataclass
class Server:
    target: str
    up: FakeUpstream
    process: ServerProcess

    def command(self, name: str) -> str:
        text = readme_commands()[name]
        return text.replace(README_TARGET, self.target).replace(".venv/bin/", f"{BIN}/")

    def run(self, name: str) -> subprocess.CompletedProcess[str]:
        command = self.command(name)
        result = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=90, check=False
        )
        # The session as it ran (pytest -s shows it; failures show it anyway).
        print(f"$ {command}\n{result.stdout}{result.stderr}[exit {result.returncode}]")
        return result

    def run_failing(self, name: str) -> subprocess.CompletedProcess[str]:
        """``run(name)`` while every model answers HTTP 500."""
        self.up.choose = failing
        try:
            return self.run(name)
        finally:
            self.up.choose = chooser(ANSWER)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("readme")
    with FakeUpstream() as up:
        up.choose = chooser(ANSWER)
        config = config_file(
            tmp,
            f"""
[server]
listen = "127.0.0.1:0"
grace_seconds = 2

# Each command picks its scenario per request (prompt markers); a circuit breaker would
# carry one command's failures into the next.
[breaker]
enabled = false

[chains.default]
models = [
  {{ model = "{OLLAMA}", timeout = 10, api_base = "{up.url}" }},
  {{ model = "{HAIKU}", timeout = 10, api_base = "{up.url}" }},
]
""",
        )
        process = ServerProcess(config)
        try:
            yield Server(process.wait_logged(within=60).target, up, process)
        finally:
            process.stop()


# -- the checks, one per README block ----------------------------------------------------


def snake(value: Any) -> Any:
    """JSON with camelCase keys (buf curl's protojson) as snake_case (grpcurl's)."""
    if isinstance(value, dict):
        return {
            re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), k): snake(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [snake(v) for v in value]
    return value


def json_messages(text: str) -> list[Any]:
    """The JSON documents printed one after another in ``text`` (a stream's output)."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while (start := text.find("{", at)) != -1:
        try:
            value, at = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            break
        found.append(value)
    return found


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def check_grpcurl_list(s: Server) -> None:
    services = ok(s.run("grpcurl-list")).split()
    assert "llm_router.v1.Router" in services
    assert "grpc.health.v1.Health" in services
    assert any(name.startswith("grpc.reflection.") for name in services)


def check_grpcurl_describe(s: Server) -> None:
    out = ok(s.run("grpcurl-describe"))
    assert "service Router {" in out
    assert (
        "rpc Route ( .llm_router.v1.RouteRequest ) returns ( .llm_router.v1.RouteResponse );" in out
    )
    assert "returns ( stream .llm_router.v1.WatchMetricsResponse );" in out


def check_health(name: str) -> Callable[[Server], None]:
    def check(s: Server) -> None:
        assert json.loads(ok(s.run(name)))["status"] == "SERVING"

    return check


def assert_success(reply: dict[str, Any]) -> None:
    assert reply["content"] == json.loads(ANSWER)
    assert reply["model_used"] == OLLAMA
    assert reply["attempts"][-1]["outcome"] == "ATTEMPT_OUTCOME_SUCCESS"
    assert reply["chain"] == "default"


def failing(path: str, body: Any) -> Behaviour | None:
    return None if path in ("/api/show", "/api/tags") else HttpError(500)


def check_grpcurl_route(s: Server) -> None:
    assert_success(json.loads(ok(s.run("grpcurl-route"))))
    failed = s.run_failing("grpcurl-route")
    assert failed.returncode != 0
    err = failed.stderr
    assert "Code: Unavailable" in err
    assert f"Message: all 2 models of chain 'default' failed: {OLLAMA}: rejected: HTTP 500" in err
    assert f"{HAIKU}: rejected: HTTP 500" in err
    # The detail, decoded by grpcurl through reflection.
    detail = json.loads(err.split("1)", 1)[1].strip().splitlines()[0])
    assert detail["@type"] == "type.googleapis.com/llm_router.v1.RouteFailure"
    assert [a["model"] for a in detail["attempts"]] == [OLLAMA, HAIKU]
    for attempt in detail["attempts"]:
        assert attempt["outcome"] == "ATTEMPT_OUTCOME_REJECTED"
        assert attempt["reason_category"] == "REASON_CATEGORY_PROVIDER_ERROR"
        assert attempt["reason"].startswith("HTTP 500 from provider")


def check_buf_route(s: Server) -> None:
    assert_success(snake(json.loads(ok(s.run("buf-route")))))
    failed = s.run_failing("buf-route")
    assert failed.returncode != 0
    status = json.loads(failed.stderr)
    assert status["code"] == "unavailable"
    assert f"{OLLAMA}: rejected: HTTP 500" in status["message"]
    assert f"{HAIKU}: rejected: HTTP 500" in status["message"]
    assert [d["type"] for d in status["details"]] == ["llm_router.v1.RouteFailure"]


def check_buf_list(s: Server) -> None:
    methods = ok(s.run("buf-list")).split()
    assert "llm_router.v1.Router/Route" in methods
    assert "llm_router.v1.Router/WatchMetrics" in methods
    assert "grpc.health.v1.Health/Check" in methods


def check_watch(name: str) -> Callable[[Server], None]:
    """The stream shows a snapshot, then the event of a call made while it is open, and
    ends at the README's time bound with a deadline error."""

    def check(s: Server) -> None:
        proc = subprocess.Popen(
            ["bash", "-c", s.command(name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:  # the snapshot is the stream's first message
            lines.append(line)
            if json_messages("".join(lines)):
                break
        context = f"readme.{name}"
        with RouterClient(s.target) as client:
            client.route([{"role": "user", "content": "hi"}], context=context, timeout=30)
        rest, err = proc.communicate(timeout=30)
        out = "".join(lines) + rest
        assert proc.returncode != 0  # the README's time bound ended the stream
        assert "deadline" in err.lower(), err
        messages = [snake(m) for m in json_messages(out)]
        assert "snapshot" in messages[0]
        assert "time" in messages[0]["snapshot"]
        events = [m["event"] for m in messages if "event" in m]
        mine = [e for e in events if e.get("context") == context]
        assert len(mine) == 1, out
        assert mine[0]["status"] == "ROUTE_STATUS_OK"
        assert mine[0]["model_used"] == OLLAMA

    return check


CHECKS: dict[str, Callable[[Server], None]] = {
    "grpcurl-list": check_grpcurl_list,
    "grpcurl-describe": check_grpcurl_describe,
    "grpcurl-health": check_health("grpcurl-health"),
    "grpcurl-route": check_grpcurl_route,
    "grpcurl-watch": check_watch("grpcurl-watch"),
    "buf-list": check_buf_list,
    "buf-health": check_health("buf-health"),
    "buf-route": check_buf_route,
    "buf-watch": check_watch("buf-watch"),
}


def test_every_readme_command_has_a_check_and_every_check_a_command() -> None:
    assert sorted(readme_commands()) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_readme_command_works_against_a_real_server(name: str, server: Server) -> None:
    """The README's command ``name``, run as written, gives the output the README promises."""
    CHECKS[name](server)


def run_example(server: Server, text: str) -> subprocess.CompletedProcess[str]:
    """client/examples/route_example.py asking ``server`` about ``text``."""
    example = ROOT / "client" / "examples" / "route_example.py"
    return subprocess.run(
        [sys.executable, str(example), "--target", server.target, text],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=child_env(folders=("client",)),
    )


def test_the_typed_python_example_prints_the_decision(server: Server) -> None:
    """client/examples/route_example.py (type-checked by mypy) works against the server."""
    result = run_example(server, "nginx is down.")
    assert ok(result).strip() == "restart"
    failed = run_example(server, "[fail] nginx is down.")
    assert failed.returncode == 1
    assert f"{HAIKU}: provider_error: HTTP 500" in failed.stderr


def test_readme_code_excerpts_are_verbatim_from_their_files() -> None:
    """The README's excerpts of example programs are copied from files that are built and run."""
    excerpts = EXCERPT.findall(README.read_text(encoding="utf-8"))
    assert excerpts
    for path, text in excerpts:
        assert text in (ROOT / path).read_text(encoding="utf-8"), (
            f"README excerpt of {path} drifted"
        )
