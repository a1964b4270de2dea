"""The thin Python client: the blocking client, and the package standing on its own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import zipfile
from pathlib import Path

import grpc
import pytest

from llm_router import AllModelsFailedError, RouterClient
from tests.support.checkout import ROOT
from tests.support.fixtures import Upstream
from tests.support.server import Serve, anthropic, ollama
from tests.support.upstream import Answer, HttpError


async def test_blocking_client_routes_and_reads_typed_attempts(
    serve: Serve, upstream: Upstream
) -> None:
    local, cloud = upstream(HttpError(503)), upstream()
    cloud.script(Answer('{"n": 2}'), HttpError(500))
    server = await serve([ollama(local), anthropic(cloud)])

    def calls() -> tuple[object, AllModelsFailedError]:
        with RouterClient(server.target) as client:
            ok = client.route([{"role": "user", "content": "n?"}], schema={"type": "object"})
            with pytest.raises(AllModelsFailedError) as info:
                client.route([{"role": "user", "content": "n?"}], context="sync")
            return ok, info.value

    # The blocking client must not run on the loop that serves it.
    ok, failed = await asyncio.to_thread(calls)
    assert ok.content == {"n": 2}  # type: ignore[attr-defined]
    assert [a.outcome for a in ok.attempts] == ["rejected", "success"]  # type: ignore[attr-defined]
    assert failed.code is grpc.StatusCode.UNAVAILABLE
    assert [a.reason_category for a in failed.attempts] == ["provider_error", "provider_error"]


def test_client_package_needs_only_grpcio_and_protobuf(tmp_path: Path) -> None:
    """The client wheel holds only llm_router/ and depends on grpcio and protobuf alone."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT / "client")],
        check=True, timeout=120,
    )  # fmt: skip
    [wheel] = tmp_path.glob("llm_router_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names if n.endswith("METADATA"))
    assert {n.split("/")[0] for n in names if not n.startswith("llm_router_client-")} == {
        "llm_router"
    }
    assert "llm_router/py.typed" in names and "llm_router/v1/router_pb2.py" in names
    requires = sorted(
        line.split(":", 1)[1].split(">")[0].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    )
    assert requires == ["grpcio", "protobuf"]
    # Only type stubs are optional (pip install "llm-router-client[typing]").
    extras = sorted(
        line.split(":", 1)[1].split(";")[0].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra == 'typing'" in line.replace('"', "'")
    )
    assert extras == ["types-grpcio", "types-protobuf"]


def test_client_imports_nothing_from_the_server_side() -> None:
    code = (
        "import sys, llm_router, llm_router.v1.router_pb2_grpc\n"
        "heavy = {'litellm', 'redis', 'jsonschema', 'llm_router_server'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {"PYTHONPATH": str(ROOT / "client"), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
