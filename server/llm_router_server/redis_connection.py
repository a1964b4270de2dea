"""One Redis connection helper for every part of the server that keeps state in Redis
(the metrics bus, the breaker store).

``RedisConnection`` is a client that fails fast: no hidden retries, every call bounded
by ``timeout``, so that its users decide what "Redis is away" means for them. They catch
``REDIS_ERRORS``; ``Backoff`` spaces their retries.
"""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from llm_router_server.safe_text import without_credentials

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
"""What a Redis call raises when Redis is down, slow or confused; callers catch these."""


class RedisConnection:
    """A Redis client that fails fast (no hidden retries; every call bounded by
    ``timeout``) so that callers decide what to do when Redis is away."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    @property
    def safe_url(self) -> str:
        """The URL without its credentials, for logs."""
        return without_credentials(self.url)

    async def aclose(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self.client.aclose()


class Backoff:
    """Delays between tries: doubling from ``first`` up to ``cap``; ``reset`` on success."""

    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self.first, self.cap, self.delay = first, cap, first

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)

    def reset(self) -> None:
        self.delay = self.first
