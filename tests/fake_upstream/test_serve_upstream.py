"""The fake upstream as a process (for the Go tests): markers pick each call's behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.checkout import ROOT, child_env
from tests.support.net import post_json


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.serve_upstream",
            "--answer",
            "yes",
            "--exit-on-stdin-eof",
        ],
        cwd=ROOT,
        env=child_env(folders=(".",)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first[0] == "listening", first
    yield proc, first[1]
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()


def post(url: str, path: str, text: str) -> tuple[int, str]:
    """A model call with the user message ``text``: status and reply text."""
    body = {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 5}
    return post_json(url + path, body, timeout=10)


def test_without_a_marker_every_model_answers_the_given_text(fake: tuple[object, str]) -> None:
    status, body = post(fake[1], "/api/chat", "hello")
    assert status == 200 and json.loads(body)["message"]["content"] == "yes"
    status, body = post(fake[1], "/v1/messages", "hello")
    assert status == 200 and json.loads(body)["content"][0]["text"] == "yes"


def test_fail_fails_every_model_and_fallback_only_ollama(fake: tuple[object, str]) -> None:
    assert post(fake[1], "/api/chat", "[fail] hi")[0] == 500
    assert post(fake[1], "/v1/messages", "[fail] hi")[0] == 500
    assert post(fake[1], "/api/chat", "[fallback] hi")[0] == 500
    assert post(fake[1], "/v1/messages", "[fallback] hi")[0] == 200


def test_refuse_is_the_providers_own_refusal(fake: tuple[object, str]) -> None:
    status, body = post(fake[1], "/v1/messages", "[refuse] hi")
    assert status == 200 and json.loads(body)["stop_reason"] == "refusal"


def test_slow_waits_then_answers(fake: tuple[object, str]) -> None:
    status, body = post(fake[1], "/api/chat", "[slow:0.2] hi")
    assert status == 200 and json.loads(body)["message"]["content"] == "yes"


def test_hang_never_answers(fake: tuple[object, str]) -> None:
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(
            urllib.request.Request(
                fake[1] + "/api/chat", b'{"messages": [{"content": "[hang]"}]}', method="POST"
            ),
            timeout=0.5,
        )


def test_it_exits_when_its_stdin_closes(fake: tuple[subprocess.Popen[str], str]) -> None:
    proc = fake[0]
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(15) == 0
