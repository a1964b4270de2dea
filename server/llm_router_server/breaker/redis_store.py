"""A ``BreakerStore`` in Redis, so that every replica shares each model's circuit: a model
that is down is learned once, not once per replica. The only module of the breaker that
imports redis; redis errors become ``BreakerStoreError`` here.

Each circuit is one JSON string at ``llm_router:breaker:<model>|<api_base>`` (the api_base
without credentials, ``rules.shown_base``), changed with an optimistic transaction (WATCH,
GET, MULTI/SET/EXEC, retried on conflict), so the rules in ``rules.py`` run unchanged on
every replica. A closed, clean circuit is deleted; the others
expire after ``ttl_seconds`` without a change. When Redis fails, the store reports it at
once for ``backoff_seconds`` instead of making every call wait on a dead server, and the
breaker lets calls through meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import time

import redis.asyncio as redis
from redis.exceptions import RedisError, WatchError

from llm_router_server.breaker.rules import Change, Circuit, State
from llm_router_server.breaker.store import BreakerStoreError
from llm_router_server.redis_connection import RedisConnection

PREFIX = "llm_router:breaker:"


class RedisBreakerStore:
    """Circuits shared through one Redis server."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: int = 3600,
        backoff_seconds: float = 1.0,
        retries: int = 20,
    ) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.backoff_seconds = backoff_seconds
        self.retries = retries
        self._down_until = 0.0

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.25) -> RedisBreakerStore:
        """A store over a new fail-fast client for ``url`` (the metrics bus's
        ``RedisConnection``: no hidden retries, every call bounded by ``timeout``): the
        breaker is read on the path of every Route call."""
        return cls(RedisConnection(url, timeout).client)

    async def load(self, key: str) -> Circuit:
        self._check_backoff()
        try:
            raw = await self.client.get(PREFIX + key)
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        return _parse(raw)

    async def update(self, key: str, change: Change) -> tuple[Circuit, Circuit]:
        self._check_backoff()
        name = PREFIX + key
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for _ in range(self.retries):
                    try:
                        await pipe.watch(name)
                        old = _parse(await pipe.get(name))
                        new = change(old)
                        pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
                        if new == Circuit():
                            pipe.delete(name)
                        else:
                            pipe.set(name, json.dumps(_encode(new)), ex=self.ttl_seconds)
                        await pipe.execute()
                        return old, new
                    except WatchError:
                        continue
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        raise BreakerStoreError(f"circuit {key!r}: still contended after {self.retries} tries")

    async def aclose(self) -> None:
        await self.client.aclose()

    def _check_backoff(self) -> None:
        if time.monotonic() < self._down_until:
            raise BreakerStoreError("redis failed recently; not retrying yet")

    def _failed(self, exc: BaseException) -> BreakerStoreError:
        self._down_until = time.monotonic() + self.backoff_seconds
        return BreakerStoreError(f"redis: {type(exc).__name__}: {exc}"[:300])


def _parse(raw: bytes | str | None) -> Circuit:
    if raw is None:
        return Circuit()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BreakerStoreError(f"unreadable circuit state: {exc}") from exc
    if not isinstance(data, dict):
        raise BreakerStoreError("unreadable circuit state: not an object")
    return _decode(data)


def _encode(circuit: Circuit) -> dict[str, object]:
    data = dataclasses.asdict(circuit)
    data["state"] = circuit.state.value
    return data


def _decode(data: dict[str, object]) -> Circuit:
    try:
        return Circuit(
            state=State(data["state"]),
            failures=int(data["failures"]),  # type: ignore[call-overload]
            open_until=float(data["open_until"]),  # type: ignore[arg-type]
            opened_at=float(data["opened_at"]),  # type: ignore[arg-type]
            probe_until=float(data["probe_until"]),  # type: ignore[arg-type]
            cool_down=float(data["cool_down"]),  # type: ignore[arg-type]
            reason=str(data["reason"]),
            firm=bool(data.get("firm", False)),  # absent in what older replicas wrote
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise BreakerStoreError(f"unreadable circuit state: {exc}") from exc
