"""The server as a process: start-up, config errors, and SIGTERM with a call in flight."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import pytest

from llm_router.v1 import router_pb2_grpc
from tests.support.config_files import config_file
from tests.support.fixtures import Upstream
from tests.support.processes import ServerProcess, run_command, write_config
from tests.support.server import HI
from tests.support.upstream import Answer, Slow
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)


async def test_sigterm_lets_the_call_in_flight_finish_then_exits_zero(
    tmp_path: Path, upstream: Upstream
) -> None:
    up = upstream(Slow(1.0, Answer("finished")))
    async with ServerProcess(write_config(tmp_path, up)) as server:
        proc = server.process
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            call = stub.Route(HI, timeout=20)
            await eventually(up.chat_requests)
            proc.send_signal(signal.SIGTERM)
            reply = await call
        assert reply.content.string_value == "finished"
        assert await asyncio.to_thread(proc.wait, 10) == 0
    output = server.output
    assert "shutting down" in output


async def test_server_reports_serving_and_answers_after_start(
    tmp_path: Path, upstream: Upstream
) -> None:
    up = upstream(Answer("hello"))
    async with ServerProcess(write_config(tmp_path, up)) as server:
        proc = server.process
        print(f"start-up to SERVING: {server.serving_after:.2f}s")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 10) == 0


def test_bad_config_stops_start_up_with_the_key_named(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[server]\nlisten_on = "x"\n')
    result = run_command("serve", "--config", str(path), timeout=60)
    assert result.returncode == 2
    assert "unknown key(s): 'server.listen_on'" in result.stderr
