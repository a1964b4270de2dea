"""The arithmetic of money: a model's price, an attempt's cost, a call's cost, the cost avoided.

Every number is reproducible from the attempts' token counts and the prices: an attempt costs
``prompt_tokens * input + completion_tokens * output`` (USD per million tokens), rounded to the
nano-dollar (``NANO_USD``), so sums of costs (the counters) add whole nano-dollars. A model
without a price has an unknown cost, never 0; a priced model whose provider reported no usage
has an unknown cost too (usage is not guessed), unless no model ran (``ProviderError.billed``
is False: an HTTP error status, a connection never made), which costs 0. Only a price of
zero (set in the configuration) makes a model free: its attempts cost 0 whatever their usage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from llm_router_server.types import Attempt, Outcome, Usage

NANO_USD = 1e-9
"""The unit costs are rounded to, and the unit counters add."""


@dataclass(frozen=True)
class Price:
    """USD per million tokens of a model."""

    input_per_mtok: float
    output_per_mtok: float
    source: str
    """Where it came from: ``"config"`` or ``"litellm:<table key>"``."""

    @property
    def free(self) -> bool:
        """Priced at zero (the configuration says the model costs nothing)."""
        return self.input_per_mtok == 0 and self.output_per_mtok == 0


def nano(usd: float) -> int:
    """USD as whole nano-dollars."""
    return round(usd / NANO_USD)


def usage_cost(price: Price | None, usage: Usage | None) -> float | None:
    """What ``usage`` costs at ``price``; None when either is unknown (0 for a free model)."""
    if price is None:
        return None
    if price.free:
        return 0.0
    if usage is None:
        return None
    # USD per million tokens * tokens / 1e6 = nano-USD * 1e-9: tokens * price * 1000 nano.
    units = usage.prompt_tokens * price.input_per_mtok + usage.completion_tokens * (
        price.output_per_mtok
    )
    return round(units * 1000) * NANO_USD


def call_cost(attempts: Iterable[Attempt]) -> float | None:
    """The attempts' costs summed (in whole nano-dollars); None when any is unknown."""
    total = 0
    for attempt in attempts:
        if attempt.outcome is Outcome.SKIPPED:
            continue
        if attempt.cost_usd is None:
            return None
        total += nano(attempt.cost_usd)
    return total * NANO_USD


def cost_avoided(answer: Attempt, price: Price | None, reference: Price | None) -> float | None:
    """What the accepted ``answer`` would have cost on the chain's first priced model
    (``reference``), when the answering model has no price or is free: its tokens at that
    model's price. 0 when a priced model answered; None when unknown (no priced model in the
    chain, or no usage reported)."""
    if is_priced(price):
        return 0.0
    if reference is None:
        return None
    return usage_cost(reference, answer.usage)


def is_priced(price: Price | None) -> bool:
    """A known, non-zero price: the model costs money."""
    return price is not None and not price.free
