"""The event loop ``llm-router serve`` runs on: config key ``server.event_loop``.

``"uvloop"`` (the default) or ``"asyncio"`` (the standard library's). grpc.aio
and aiohttp run on either; the loop is created before the gRPC server, as
grpc.aio requires. Measured on the bench (README, Performance): uvloop cuts the
server's CPU per Route at 64 concurrent calls by about a tenth; at one call at
a time the difference is within the noise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, get_args

from llm_router_server.config.model import EventLoop

T = TypeVar("T")

logger = logging.getLogger(__name__)


def loop_factory(kind: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for ``asyncio.Runner`` (None: the standard loop)."""
    if kind == "asyncio":
        return None
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise ValueError(f"unknown event loop {kind!r}; choose one of {', '.join(get_args(EventLoop))}")


def run(main: Coroutine[Any, Any, T], kind: EventLoop) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        loop = type(runner.get_loop())
        logger.info("event loop: %s (%s.%s)", kind, loop.__module__, loop.__name__)
        return runner.run(main)
