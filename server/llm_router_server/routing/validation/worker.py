"""Validation workers: ``python -m llm_router_server.routing.validation.worker --fork-server``.

``pool.py`` starts one fork server, which forks a worker for each request and hands back
its socket. A worker greets with ``ready``, then answers one task at a time, each a
length-prefixed pickle:

- ``CheckSchema(text)`` -> ``SchemaFacts``, or ``InvalidSchema(message)``;
- ``JudgeAnswer(text, schema, patterns)`` -> a ``Verdict`` (for a free-text answer that is
  accepted, without the text: the parent has it), or ``InvalidSchema``.

Compiled schemas are kept in a cache bounded by bytes. A worker exits when its socket
closes (the parent went away); workers and the fork server ignore SIGINT (the parent
decides when they end) and run at a lower priority than the server.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import struct
import sys
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from llm_router_server.errors import InvalidRequestError
from llm_router_server.routing.judging import RefusalDetector, judge
from llm_router_server.routing.validation.cache import ByteBoundedCache, schema_cost
from llm_router_server.routing.validation.processes import CACHE_ENV
from llm_router_server.routing.validation.schemas import CompiledSchema, compile_schema

_HEADER = struct.Struct("!I")


@dataclass(frozen=True)
class CheckSchema:
    text: str


@dataclass(frozen=True)
class JudgeAnswer:
    text: str
    schema: str | None
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class InvalidSchema:
    message: str


class Handler:
    """The worker's state: compiled schemas and refusal detectors, reused across tasks."""

    def __init__(self, cache_bytes: int) -> None:
        self.schemas: ByteBoundedCache[str, CompiledSchema | InvalidSchema] = ByteBoundedCache(
            cache_bytes
        )
        self.detectors: dict[tuple[str, ...], RefusalDetector] = {}

    def schema(self, text: str) -> CompiledSchema | InvalidSchema:
        found = self.schemas.get(text)
        if found is None:
            try:
                found = compile_schema(text)
            except InvalidRequestError as exc:
                found = InvalidSchema(str(exc))
            self.schemas.put(text, found, schema_cost(text))
        return found

    def __call__(self, task: object) -> object:
        if isinstance(task, CheckSchema):
            schema = self.schema(task.text)
            return schema if isinstance(schema, InvalidSchema) else schema.facts
        if isinstance(task, JudgeAnswer):
            compiled = None if task.schema is None else self.schema(task.schema)
            if isinstance(compiled, InvalidSchema):
                return compiled
            detector = self.detectors.get(task.patterns)
            if detector is None:
                detector = self.detectors.setdefault(task.patterns, RefusalDetector(task.patterns))
            verdict = judge(task.text, compiled, detector)
            if compiled is None and verdict.accepted:
                verdict = replace(verdict, value=None)  # the parent has the text
            return verdict
        raise TypeError(f"unknown task {type(task).__name__}")


def _read(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _write(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def serve(inbox: BinaryIO, outbox: BinaryIO, handler: Any) -> None:
    """Answer tasks until the input closes."""
    _write(outbox, b"ready")
    while True:
        header = _read(inbox, _HEADER.size)
        if header is None:
            return
        payload = _read(inbox, _HEADER.unpack(header)[0])
        if payload is None:
            return
        try:
            result = handler(pickle.loads(payload))
        except Exception as exc:  # reported to the parent, which treats it as a failure
            result = InvalidSchema(f"validation failed: {type(exc).__name__}: {exc}"[:300])
        _write(outbox, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


WORKER_NICENESS = 10
"""Workers yield the CPU to the server's event loop: on a busy machine a worker burning
its budget must not slow the health checks and the other calls down."""


def fork_server() -> None:
    """Fork a worker for each byte read on fd 0 (a socket); send back its pid and the
    parent's end of its socket. Exits when fd 0 closes; its children are reaped by the
    kernel (SIGCHLD ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    os.nice(WORKER_NICENESS)  # inherited by every worker
    os.dup2(2, 1)  # stray prints go to stderr
    sys.stdout = sys.stderr
    cache_bytes = int(os.environ.get(CACHE_ENV, str(32 << 20)))
    control = socket.socket(fileno=os.dup(0))
    os.close(0)
    while control.recv(1):
        parent, child = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the worker
            control.close()
            parent.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                inbox = child.makefile("rb", buffering=0)
                outbox = child.makefile("wb")
                serve(inbox, outbox, Handler(cache_bytes))  # type: ignore[arg-type]
            finally:
                os._exit(0)
        child.close()
        socket.send_fds(control, [str(pid).encode()], [parent.fileno()])
        parent.close()


def main() -> None:
    if sys.argv[1:] == ["--fork-server"]:
        fork_server()
    else:
        raise SystemExit(
            "usage: python -m llm_router_server.routing.validation.worker --fork-server"
        )


if __name__ == "__main__":
    # Run the module's own copy (not ``__main__``'s), so that what it pickles names
    # ``llm_router_server.routing.validation.worker`` classes the parent can load.
    from llm_router_server.routing.validation import worker

    worker.main()
