"""Run a ``FakeUpstream`` as a process, for tests written in other languages (the Go client's).

    python -m tests.support.serve_upstream [--answer TEXT] [--exit-on-stdin-eof]

Prints ``listening http://127.0.0.1:PORT`` on its first stdout line, then serves
Ollama, Anthropic and OpenAI on that port until SIGTERM/SIGINT (or, with
``--exit-on-stdin-eof``, until its standard input closes, so it never outlives
the test that started it).

Each model call's behaviour is chosen by a marker anywhere in the request
(normally in the prompt text), so one server drives every case:

    [fail]          every model answers HTTP 500
    [fallback]      Ollama answers HTTP 500; Anthropic and OpenAI answer
    [refuse]        the provider's own safety refusal (Ollama: a refusal text)
    [hang]          no model ever answers
    [slow:SECONDS]  every model waits SECONDS, then answers

Without a marker every model answers ``--answer`` (default ``ok``).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from tests.support.upstream import (
    Answer,
    Behaviour,
    FakeUpstream,
    Hang,
    HttpError,
    SafetyRefusal,
    Slow,
)

OLLAMA_PATHS = frozenset({"/api/chat", "/api/generate"})
_SLOW = re.compile(r"\[slow:([0-9]+(?:\.[0-9]+)?)\]")


def chooser(answer: str) -> Any:
    """The per-request behaviour for the markers above."""

    def choose(path: str, body: Any) -> Behaviour | None:
        if path in ("/api/show", "/api/tags"):
            return None  # model metadata: always the normal reply
        text = json.dumps(body) if body is not None else ""
        if "[fail]" in text:
            return HttpError(500)
        if "[fallback]" in text and path in OLLAMA_PATHS:
            return HttpError(500)
        if "[refuse]" in text:
            return SafetyRefusal()
        if "[hang]" in text:
            return Hang()
        if match := _SLOW.search(text):
            return Slow(float(match.group(1)), Answer(answer))
        return Answer(answer)

    return choose


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answer", default="ok", help="the answer text without a marker")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="stop when standard input closes"
    )
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_on_stdin_eof:

        def watch_stdin() -> None:
            sys.stdin.buffer.read()
            stop.set()

        threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()
    with FakeUpstream() as up:
        up.choose = chooser(args.answer)
        print(f"listening {up.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
