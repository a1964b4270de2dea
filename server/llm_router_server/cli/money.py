"""How the command line writes money: US dollars, or "unknown" (never 0 for unknown)."""

from __future__ import annotations


def usd(value: float | None) -> str:
    """``$0.000011`` (to the nano-dollar, trailing zeros cut), ``$0``, or ``unknown``."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return f"${text}"
