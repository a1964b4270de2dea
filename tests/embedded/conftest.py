"""Tests against the real embedded model: llama.cpp's server from the ``xllamacpp`` wheel with
SmolLM2-135M-Instruct, on 127.0.0.1.

They need the "local" extra and the model file (``./scripts/setup`` installs both). Without
them the tests are skipped, except in CI (``CI`` set), where a missing piece fails them.

``llama`` is one model server for the whole session, started the way ``EmbeddedServer``
starts it (``child.py``), for the tests that only send it requests; the lifecycle tests
start their own.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_router_server.embedded.model import check_server_installed, locate
from llm_router_server.embedded.process import API_KEY_VARIABLE, CHILD, free_port
from llm_router_server.errors import ConfigError
from llm_router_server.types import ModelSpec

THREADS = 2


def why_missing() -> str | None:
    try:
        check_server_installed()
        locate()
    except ConfigError as exc:
        return str(exc)
    return None


MISSING = why_missing()


@pytest.fixture(autouse=True)
def _needs_the_model() -> None:
    if MISSING is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the embedded model is not installed in CI: {MISSING}")
        pytest.skip(f"the embedded model is not installed: {MISSING}")


@pytest.fixture
def gguf() -> Path:
    return locate()


@dataclass
class Llama:
    """A running llama.cpp server with the embedded model."""

    process: subprocess.Popen[bytes]
    api_base: str
    api_key: str
    name: str

    def spec(self, *, max_tokens: int = 96, timeout: float = 30.0, **kw: Any) -> ModelSpec:
        """The model as a chain names it once the server's URL and key are filled in."""
        params = {"max_tokens": max_tokens, "temperature": 0, "api_key": self.api_key}
        name = f"openai/{self.name}"
        return ModelSpec(name, timeout, api_base=self.api_base, params=params, **kw)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """One direct call to ``/v1/chat/completions``."""
        request = urllib.request.Request(
            f"{self.api_base}/chat/completions",
            data=json.dumps({"model": self.name, **body}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer


def wait_healthy(port: int, process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    give_up = time.monotonic() + within
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the model server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > give_up:
            raise RuntimeError(f"the model server did not answer /health within {within}s")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Llama]:
    if MISSING is not None:
        pytest.skip(MISSING)
    gguf, port, key = locate(), free_port(), secrets.token_urlsafe(16)
    log = tmp_path_factory.mktemp("llama") / "llama.log"
    command = [sys.executable, str(CHILD), "--model", str(gguf), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--threads", str(THREADS)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, API_KEY_VARIABLE: key},
        )
    try:
        wait_healthy(port, process)
        yield Llama(process, f"http://127.0.0.1:{port}/v1", key, gguf.stem)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.terminate()
        process.wait(10)
