"""An App serving on its own event loop in a thread, for tests that call it from blocking code
(hypothesis drives synchronous tests), and the statuses that count as a clear answer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc

from llm_router_server.app import App
from llm_router_server.config import Config

CLEAR = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class ThreadedServer:
    """An App serving on its own event loop in a thread."""

    def __init__(self, config: Config) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app = self._run(self._make(config))
        self.port = self._run(self.app.start())

    async def _make(self, config: Config) -> App:
        return App(config)

    @staticmethod
    async def _cancel_the_rest() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def close(self) -> None:
        self._run(self.app.stop(0))
        self._run(self._cancel_the_rest())  # e.g. litellm's logging worker on this loop
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
