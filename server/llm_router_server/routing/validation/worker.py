"""A validation worker process: ``python -m llm_router_server.routing.validation.worker``.

Started by ``pool.py`` with a socket as its standard input and output; it greets with
``ready``, then answers one task at a time, each a length-prefixed pickle:

- ``CheckSchema(text)`` -> ``SchemaFacts``, or ``InvalidSchema(message)``;
- ``JudgeAnswer(text, schema, patterns)`` -> a ``Verdict`` (for a free-text answer that is
  accepted, without the text: the parent has it), or ``InvalidSchema``.

Compiled schemas are kept in a cache bounded by bytes. The worker exits when its input
closes (the parent went away) and ignores SIGINT (the parent decides when it ends).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from llm_router_server.errors import InvalidRequestError
from llm_router_server.routing.judging import RefusalDetector, judge
from llm_router_server.routing.validation.cache import ByteBoundedCache, schema_cost
from llm_router_server.routing.validation.pool import CACHE_ENV
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


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(WORKER_NICENESS)
    # The protocol owns the socket on fd 0/1; stray prints go to stderr instead.
    inbox = os.fdopen(os.dup(0), "rb", buffering=0)
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(inbox, outbox, Handler(int(os.environ.get(CACHE_ENV, str(32 << 20)))))


if __name__ == "__main__":
    # Run the module's own copy (not ``__main__``'s), so that what it pickles names
    # ``llm_router_server.routing.validation.worker`` classes the parent can load.
    from llm_router_server.routing.validation import worker

    worker.main()
