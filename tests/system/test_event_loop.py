"""``server.event_loop``: uvloop (default) or asyncio; a bad value stops start-up naming the key,
and the server runs, answers and stops cleanly on either loop."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import pytest

from llm_router.v1 import router_pb2_grpc
from llm_router_server.errors import ConfigError
from llm_router_server.event_loop import loop_factory
from tests.support.config_files import load_text
from tests.support.fixtures import Upstream
from tests.support.processes import ServerProcess, write_config
from tests.support.server import HI
from tests.support.upstream import Answer

pytestmark = pytest.mark.timeout(90)


def test_default_is_uvloop_and_asyncio_is_a_choice(tmp_path: Path) -> None:
    assert load_text(tmp_path, "").server.event_loop == "uvloop"
    cfg = load_text(tmp_path, '[server]\nevent_loop = "asyncio"\n')
    assert cfg.server.event_loop == "asyncio"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[server]\nevent_loop = "trio"\n',
            "server.event_loop: expected one of 'uvloop', 'asyncio'",
        ),
        ("[server]\nevent_loop = 1\n", "server.event_loop: expected str"),
    ],
)
def test_bad_event_loop_stops_start_up_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert message in str(info.value)


def test_unknown_loop_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        loop_factory("trio")


@pytest.mark.parametrize(
    ("kind", "loop_class"), [("uvloop", "uvloop.Loop"), ("asyncio", "asyncio")]
)
async def test_server_answers_and_stops_on_either_loop(
    tmp_path: Path, upstream: Upstream, kind: str, loop_class: str
) -> None:
    up = upstream(Answer("hello"))
    config = write_config(tmp_path, up)
    config.write_text(
        config.read_text().replace("[server]\n", f'[server]\nevent_loop = "{kind}"\n')
    )
    async with ServerProcess(config) as server:
        proc = server.process
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            replies = await asyncio.gather(*(stub.Route(HI, timeout=20) for _ in range(20)))
        assert {r.content.string_value for r in replies} == {"hello"}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    output = server.output
    assert f"event loop: {kind} ({loop_class}" in output
    assert "stopped" in output
