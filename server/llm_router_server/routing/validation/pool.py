"""A small pool of worker processes that can be killed when a task runs out of time.

``concurrent.futures.ProcessPoolExecutor`` cannot stop a task that is stuck (a backtracking
regex never returns to Python), so the pool keeps its own processes: each task goes to an
idle worker, and a worker that has not answered within the task's budget is killed
(SIGKILL) and replaced on demand. Waiting for a worker is not part of the budget (the
caller's deadline bounds it); starting one is not either.

The workers are processes forked by a fork server (``processes.py``, ``worker.py``), each
talking over a socket pair with length-prefixed pickles, driven with the running loop's
``sock_*`` calls: a worker belongs to no event loop, so one pool can serve several loops in
turn (tests) and never blocks one; a worker whose start outlives its loop is killed, its
socket closed.
A task keeps running when the coroutine that awaits it is cancelled (its budget still
ends it), so a cancelled call never costs a worker restart.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import pickle
import socket
import struct
import threading
import time
from collections import deque
from typing import Any

from llm_router_server.routing.validation.processes import (
    ForkServer,
    Worker,
    WorkerFailedError,
    kill_forked,
)

__all__ = ["BudgetExceededError", "WorkerFailedError", "WorkerPool"]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!I")
READY = b"ready"


class BudgetExceededError(Exception):
    """The task did not finish within its budget; its worker was killed."""


async def _send(sock: socket.socket, payload: bytes) -> None:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, _HEADER.pack(len(payload)) + payload)


async def _receive(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    header = await _read_exactly(loop, sock, _HEADER.size)
    return await _read_exactly(loop, sock, _HEADER.unpack(header)[0])


async def _read_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        count = await loop.sock_recv_into(sock, view[got:])
        if count == 0:
            raise WorkerFailedError("the validation worker exited")
        got += count
    return bytes(buffer)


class WorkerPool:
    """Up to ``size`` worker processes, started when first needed."""

    def __init__(
        self, size: int, *, cache_bytes: int = 32 << 20, start_timeout: float = 60.0
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.cache_bytes = cache_bytes
        self.start_timeout = start_timeout
        self._idle: list[Worker] = []
        self._live: set[Worker] = set()
        self._starting = 0
        self._starts: set[asyncio.Future[None]] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._fork_server: ForkServer | None = None
        self._fork_lock = threading.Lock()
        self.kills = 0
        """Workers killed for running out of budget (for tests and logs)."""

    async def run(
        self,
        task: Any,
        budget: float,
        *,
        key: int | None = None,
        prepare: tuple[Any, float] | None = None,
    ) -> Any:
        """Run ``task`` in a worker within ``budget`` seconds and return its result.

        ``key`` names what the task needs compiled in the worker (a schema): a worker that
        has it is preferred; on one that has not, ``prepare`` (a task and its own budget,
        e.g. checking the schema) runs first, so the task's budget is the task's alone.
        Raises BudgetExceededError or WorkerFailedError.
        """
        worker = await self._acquire(key)
        steps = [(task, budget)]
        if prepare is not None and key is not None and key not in worker.known:
            steps.insert(0, prepare)
        execution = asyncio.ensure_future(self._execute(worker, steps, key))
        execution.add_done_callback(_retrieve)
        # Shielded: a cancelled caller leaves the task to finish (or be killed) on its own.
        return await asyncio.shield(execution)

    async def _execute(
        self, worker: Worker, steps: list[tuple[Any, float]], key: int | None
    ) -> Any:
        healthy = False
        result: Any = None
        try:
            for task, budget in steps:
                result = await self._step(worker, task, budget)
            healthy = True
        finally:
            if healthy:
                if key is not None:
                    worker.known.add(key)
                self._release(worker)
            else:  # killed, dead, or cancelled with the loop: never reuse its socket
                self._discard(worker)
        return result

    async def _step(self, worker: Worker, task: Any, budget: float) -> Any:
        started = time.monotonic()
        try:
            async with asyncio.timeout(budget):
                await _send(worker.sock, pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
                reply = await _receive(worker.sock)
            return pickle.loads(reply)
        except TimeoutError:
            self.kills += 1
            logger.warning(
                "validation worker %d ran out of its %.3gs budget: killed", worker.pid, budget
            )
            self._discard(worker)
            self.start()  # its replacement, at once: the next task need not wait for it
            raise BudgetExceededError(f"took longer than {budget * 1000:.0f} ms") from None
        except (OSError, EOFError, pickle.UnpicklingError, WorkerFailedError) as exc:
            logger.warning("validation worker %d failed: %s", worker.pid, exc)
            raise WorkerFailedError(f"the validation worker failed: {exc}") from exc
        finally:
            logger.debug("validation task took %.1f ms", (time.monotonic() - started) * 1000)

    async def _acquire(self, key: int | None) -> Worker:
        while True:
            if self._closed:
                raise WorkerFailedError("the validation pool is closed")
            if self._idle:
                index = next(
                    (i for i, w in enumerate(self._idle) if key is not None and key in w.known),
                    len(self._idle) - 1,
                )
                return self._idle.pop(index)
            if len(self._live) + self._starting < self.size:
                self.start()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def start(self, count: int = 1) -> None:
        """Start up to ``count`` more workers in the background, as the pool has room
        (needs a running loop). A start is not tied to the call that asked for it: a
        caller whose deadline ends meanwhile does not waste it."""
        for _ in range(count):
            if self._closed or len(self._live) + self._starting >= self.size:
                return
            self._starting += 1
            starting = asyncio.ensure_future(self._start())
            self._starts.add(starting)
            starting.add_done_callback(self._starts.discard)
            starting.add_done_callback(_retrieve)

    async def _start(self) -> None:
        worker: Worker | None = None
        try:
            worker = await self._forked()
            async with asyncio.timeout(self.start_timeout):
                hello = await _receive(worker.sock)
            if hello != READY:
                raise WorkerFailedError(f"unexpected greeting {hello[:20]!r}")
        except BaseException as exc:
            self._starting -= 1
            if worker is not None:
                worker.kill()
            if not isinstance(exc, asyncio.CancelledError):  # else: its loop is closing
                logger.error("a validation worker did not start: %r", exc)
            failure = WorkerFailedError(f"a validation worker did not start: {exc!r}")
            for waiter in self._waiters:
                if not waiter.done() and not waiter.get_loop().is_closed():
                    waiter.set_exception(failure)
            raise
        self._starting -= 1
        self._live.add(worker)
        logger.debug("validation worker %d started", worker.pid)
        self._release(worker)

    async def _forked(self) -> Worker:
        """A new worker, forked in a thread. Should the caller go before the fork ends
        (cancelled, or its loop closed), the worker is killed and its socket closed when the
        fork ends, not dropped with the thread's result (``asyncio.to_thread`` would)."""
        forked: concurrent.futures.Future[tuple[int, socket.socket]] = concurrent.futures.Future()
        forked.set_running_or_notify_cancel()  # running: a cancelled waiter cannot cancel it
        threading.Thread(target=self._fork_into, args=(forked,), name="validation-fork").start()
        try:
            pid, sock = await asyncio.wrap_future(forked)
        except BaseException:
            forked.add_done_callback(kill_forked)  # now if it is done, else in the thread
            raise
        return Worker(pid, sock)

    def _fork_into(self, forked: concurrent.futures.Future[tuple[int, socket.socket]]) -> None:
        try:
            forked.set_result(self._fork())
        except BaseException as exc:
            forked.set_exception(exc)

    def _fork(self) -> tuple[int, socket.socket]:
        """Fork a worker through the fork server, starting that first if need be (runs in
        a thread)."""
        with self._fork_lock:
            if self._closed:
                raise WorkerFailedError("the validation pool is closed")
            if self._fork_server is None or not self._fork_server.alive():
                if self._fork_server is not None:
                    self._fork_server.close()
                    self._fork_server = None
                self._fork_server = ForkServer(self.cache_bytes)
            return self._fork_server.fork()

    def _release(self, worker: Worker) -> None:
        if self._closed:
            self._discard(worker)
            return
        self._idle.append(worker)
        self._wake()

    def _discard(self, worker: Worker) -> None:
        if worker in self._live:
            self._live.discard(worker)
            worker.kill()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Kill every worker (a task in progress fails with WorkerFailedError)."""
        self._closed = True
        self._idle.clear()
        for worker in list(self._live):
            self._discard(worker)
        with self._fork_lock:
            if self._fork_server is not None:
                self._fork_server.close()
                self._fork_server = None
        for waiter in self._waiters:
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(None)  # they see the pool closed

    @classmethod
    def shared(cls, size: int, cache_bytes: int) -> WorkerPool:
        """The process's pool of this shape, created on first use and closed at exit (a
        server has one; tests that start many servers share it rather than start workers
        for each)."""
        pool = _SHARED.get((size, cache_bytes))
        if pool is None or pool._closed:
            pool = _SHARED[size, cache_bytes] = cls(size, cache_bytes=cache_bytes)
            atexit.register(pool.close)
        return pool


_SHARED: dict[tuple[int, int], WorkerPool] = {}


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a finished task's exception as seen (its caller may have gone)."""
    if not task.cancelled():
        task.exception()
