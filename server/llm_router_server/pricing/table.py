"""litellm's bundled price table, read from its JSON file: litellm itself is never imported.

The file (``model_prices_and_context_window_backup.json``) ships inside the litellm package;
``bundled_table_path`` finds it with ``importlib.util.find_spec``, which locates a package
without running it. Nothing is fetched. ``read_table`` keeps the entries with a numeric
input and output price per token; ``lookup`` finds a model string's entry the way litellm's
keys are written (``claude-haiku-4-5-20251001``, ``gpt-4o-mini``, ``ollama/llama3``).

A table price of zero on both sides is not taken: it says the provider does not meter the
model (Ollama's entries), not what running it costs. A model is free only when the
configuration says so (``price_per_mtok``); otherwise its cost is unknown.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llm_router_server.pricing.price import Price

logger = logging.getLogger(__name__)

TABLE_FILE = "model_prices_and_context_window_backup.json"
MTOK = 1_000_000

# litellm's model prefix -> the ``litellm_provider`` of the table's entries it may use
# under their bare name.
_PROVIDERS = {"ollama_chat": "ollama", "anthropic": "anthropic", "openai": "openai"}


def bundled_table_path() -> Path | None:
    """The price table inside the installed litellm package; None when it is not there."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / TABLE_FILE
        if path.is_file():
            return path
    return None


def _per_token(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def read_table(path: Path) -> dict[str, tuple[str, Price]]:
    """``{table key: (litellm_provider, Price)}`` for the entries with both prices."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    table: dict[str, tuple[str, Price]] = {}
    if not isinstance(raw, dict):
        return table
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        per_in = _per_token(entry.get("input_cost_per_token"))
        per_out = _per_token(entry.get("output_cost_per_token"))
        if per_in is None or per_out is None:
            continue
        provider = entry.get("litellm_provider")
        price = Price(round(per_in * MTOK, 9), round(per_out * MTOK, 9), source=f"litellm:{key}")
        table[str(key)] = (provider if isinstance(provider, str) else "", price)
    return table


def lookup(table: Mapping[str, tuple[str, Price]], model: str) -> Price | None:
    """The price of a litellm model string: its own key, then (for ``ollama_chat/``)
    ``ollama/NAME``, then the bare name when that entry belongs to the prefix's provider.
    A zero price is not a price (see the module docstring)."""
    prefix, _, name = model.partition("/")
    candidates: list[tuple[str, str | None]] = [(model, None)]
    if name:
        if prefix == "ollama_chat":
            candidates.append((f"ollama/{name}", None))
        candidates.append((name, _PROVIDERS.get(prefix, prefix)))
    for key, provider in candidates:
        found = table.get(key)
        if found is None or (provider is not None and found[0] != provider):
            continue
        return None if found[1].free else found[1]
    return None
