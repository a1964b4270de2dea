"""A least-recently-used cache bounded by (estimated) bytes, not entries."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

COMPILED_SCHEMA_BYTES_PER_CHAR = 8
"""Memory a compiled schema takes per character of its text: 6 to 7 measured with
tracemalloc (jsonschema 4.26, 1 KB to 100 KB schemas), plus ``COMPILED_SCHEMA_OVERHEAD``."""
COMPILED_SCHEMA_OVERHEAD = 8 * 1024


def schema_cost(text: str) -> int:
    """Estimated bytes of a cached compiled schema (document, validator, registry)."""
    return COMPILED_SCHEMA_BYTES_PER_CHAR * len(text) + COMPILED_SCHEMA_OVERHEAD


class ByteBoundedCache(Generic[K, V]):
    """Keeps the most recently used entries whose costs add up to at most ``capacity``.

    An entry costlier than the whole capacity is not kept at all.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, cost: int) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[1]
        if cost > self.capacity:
            return
        self._entries[key] = (value, cost)
        self.size += cost
        while self.size > self.capacity:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.size -= evicted
