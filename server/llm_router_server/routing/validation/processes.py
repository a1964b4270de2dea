"""The validation workers' processes: the fork server that forks them and the parent's
handle on each (its pid and its end of the socket pair), which closes that socket exactly once.
``pool.py`` schedules tasks on them."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading

WORKER_MODULE = "llm_router_server.routing.validation.worker"
CACHE_ENV = "LLM_ROUTER_VALIDATION_CACHE_BYTES"
"""Tells a worker how many bytes its cache of compiled schemas may hold."""


class WorkerFailedError(Exception):
    """The worker died, could not start, or answered something unreadable."""


class ForkServer:
    """One small process, started once, that forks the workers (``worker.py --fork-server``).

    Starting a worker from the server process would fork it, holding the GIL until the
    child has exec'd: tens to hundreds of milliseconds on a busy machine, and a worker is
    started each time one is killed. The fork server has the validation modules imported,
    so a worker it forks is ready in about a millisecond. It reaps its children itself.
    """

    def __init__(self, cache_bytes: int) -> None:
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env[CACHE_ENV] = str(cache_bytes)
        # The fork server imports this package as the parent did, whatever set its path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, "--fork-server"],
                stdin=child.fileno(),
                env=env,
                close_fds=True,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self.sock = parent
        self.lock = threading.Lock()

    def fork(self) -> tuple[int, socket.socket]:
        """A new worker: its pid and the parent's end of its socket (blocking: a thread)."""
        with self.lock:
            self.sock.sendall(b"f")
            message, fds, _, _ = socket.recv_fds(self.sock, 64, 1)
        socks = [socket.socket(fileno=fd) for fd in fds]  # each closed or handed on
        if message.isdigit() and len(socks) == 1:
            return int(message), socks[0]
        for sock in socks:
            sock.close()
        raise WorkerFailedError("the validation fork server exited")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.sock.close()  # it exits when its input closes
        if self.proc.poll() is None:
            self.proc.kill()
            threading.Thread(target=self.proc.wait, name="reap-fork-server").start()


class Worker:
    """One worker process and the parent's end of its socket."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.pid = pid
        self.sock = sock
        self.known: set[int] = set()
        """Hashes of the schema texts this worker has compiled (see ``Pool.run``'s ``key``)."""
        self.killed = False

    def kill(self) -> None:
        """SIGKILL the worker (the fork server reaps it) and close its socket, once (a
        second SIGKILL could reach a process that reused the pid)."""
        if self.killed:
            return
        self.killed = True
        _kill(self.pid, self.sock)


def _kill(pid: int, sock: socket.socket) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    sock.close()


def kill_forked(forked: concurrent.futures.Future[tuple[int, socket.socket]]) -> None:
    """Kill a forked worker nobody took (its starter was cancelled or its loop closed)."""
    if not forked.cancelled() and forked.exception() is None:
        _kill(*forked.result())
