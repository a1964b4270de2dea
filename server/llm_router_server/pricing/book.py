"""``PriceBook``: each model's price, from the configuration or litellm's bundled table.

A model's ``price_per_mtok`` (configuration) wins; otherwise the table is asked
(``table.py``). The table is read once per process, in a worker thread: ``start()`` begins
it at start-up, and the first call that needs a price before it is read waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from llm_router_server.pricing.price import Price, is_priced
from llm_router_server.pricing.table import bundled_table_path, lookup, read_table
from llm_router_server.types import ModelSpec

logger = logging.getLogger(__name__)

Table = dict[str, tuple[str, Price]]

_LOADED: dict[Path | None, Table] = {}
"""Tables already read in this process, by path."""


def _read(path: Path | None) -> Table:
    if path in _LOADED:
        return _LOADED[path]
    started = time.monotonic()
    table: Table = {}
    if path is None:
        logger.warning(
            "litellm's price table was not found: models without a configured price "
            "have an unknown cost"
        )
    else:
        try:
            table = read_table(path)
        except (OSError, ValueError) as exc:
            logger.warning("cannot read litellm's price table %s: %s", path, exc)
        logger.debug(
            "read %d prices from %s in %.3fs", len(table), path, time.monotonic() - started
        )
    _LOADED[path] = table
    return table


class PriceBook:
    """Prices of models: configured ones, else litellm's bundled table."""

    def __init__(self, table_path: Path | None = None, *, use_table: bool = True) -> None:
        self._path = table_path
        self._use_table = use_table
        self._table: Table | None = None if use_table else {}
        self._loading: asyncio.Future[Table] | None = None
        self._prices: dict[str, Price | None] = {}

    def start(self) -> None:
        """Begin reading the table in a worker thread (call from the event loop)."""
        self._load()

    def _load(self) -> asyncio.Future[Table]:
        if self._loading is None:
            path = self._path if self._path is not None else bundled_table_path()
            self._loading = asyncio.ensure_future(asyncio.to_thread(_read, path))
        return self._loading

    async def price(self, spec: ModelSpec) -> Price | None:
        """The model's price; None when it has none."""
        if spec.price_per_mtok is not None:
            return Price(*spec.price_per_mtok, source="config")
        if spec.model in self._prices:
            return self._prices[spec.model]
        if self._table is None:
            self._table = await asyncio.shield(self._load())
        found = lookup(self._table, spec.model)
        self._prices[spec.model] = found
        return found

    def known(self, spec: ModelSpec) -> Price | None:
        """The price if it can be told without waiting (for a cancelled attempt)."""
        if spec.price_per_mtok is not None:
            return Price(*spec.price_per_mtok, source="config")
        return self._prices.get(spec.model)

    async def reference(self, models: Iterable[ModelSpec]) -> Price | None:
        """The price of the first priced model (known and not zero) among ``models``."""
        for spec in models:
            price = await self.price(spec)
            if is_priced(price):
                return price
        return None
