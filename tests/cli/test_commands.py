"""The ``llm-router`` command: its help, and ``route`` and ``watch`` against a real server."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.fixtures import Upstream
from tests.support.processes import run_command, start_command
from tests.support.server import SCHEMA, Serve, anthropic, ollama
from tests.support.upstream import Answer, HttpError

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("command", [[], ["serve"], ["route"], ["health"]])
def test_cli_help(command: list[str]) -> None:
    result = run_command(*command, "--help", timeout=30)
    assert result.returncode == 0
    assert "usage: llm-router" in result.stdout


async def test_cli_watch_json_prints_one_message_per_line(serve: Serve, upstream: Upstream) -> None:
    up = upstream(Answer("fine"))
    server = await serve([ollama(up)])
    await server.route(context="earlier")
    process = await start_command(
        *("watch", "--json", "--count", "2", "--target", server.target, "--interval", "0")
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
    serve: Serve, upstream: Upstream
) -> None:
    server = await serve([ollama(upstream())])
    process = await start_command(
        "watch", "--json", "--target", server.target, "--resume-after", "yesterday"
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "INVALID_ARGUMENT" in err.decode() and "resume_after_event_id" in err.decode()


async def test_cli_route_prints_the_answer_and_the_attempts(
    serve: Serve, upstream: Upstream
) -> None:
    local, cloud = upstream(), upstream()
    local.script(HttpError(503))
    cloud.script(Answer('{"action": "wait"}'))
    # Claude with a schema goes through litellm: its first import in this process can take
    # longer than the model's default timeout on a busy machine.
    server = await serve([ollama(local), anthropic(cloud, timeout=30)])
    proc = await start_command(
        "route", "--target", server.target, "--schema", json.dumps(SCHEMA), "Should I restart?"
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == {"action": "wait"}
    assert "answered by anthropic/claude-haiku-4-5-20251001" in err.decode()
    assert "ollama_chat/qwen2.5:7b: rejected" in err.decode()


async def test_cli_route_reports_all_failed_with_exit_1(serve: Serve, upstream: Upstream) -> None:
    local = upstream()
    local.script(HttpError(500))
    server = await serve([ollama(local)])
    proc = await start_command("route", "--target", server.target, "hi")
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "UNAVAILABLE" in err.decode() and "provider_error" in err.decode()
