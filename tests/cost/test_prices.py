"""The price arithmetic and where prices come from: litellm's bundled table (read from its
file without importing litellm), the configuration's ``price_per_mtok``, and what a missing
price or usage means."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_router_server import config
from llm_router_server.errors import ConfigError
from llm_router_server.pricing.book import PriceBook
from llm_router_server.pricing.price import Price, call_cost, cost_avoided, usage_cost
from llm_router_server.pricing.table import bundled_table_path, lookup, read_table
from llm_router_server.types import Attempt, Category, ModelSpec, Outcome, Usage

ROOT = Path(__file__).resolve().parents[2]
HAIKU = Price(1.0, 5.0, "test")
FREE = Price(0.0, 0.0, "config")


def test_the_bundled_table_is_read_without_importing_litellm() -> None:
    code = (
        "import sys\n"
        "from llm_router_server.pricing.table import bundled_table_path, read_table, lookup\n"
        "table = read_table(bundled_table_path())\n"
        "price = lookup(table, 'claude-haiku-4-5-20251001')\n"
        "print(price.input_per_mtok, price.output_per_mtok, 'litellm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "server"), "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    assert out == ["1.0", "5.0", "False"]


@pytest.fixture(scope="module")
def table() -> dict[str, tuple[str, Price]]:
    path = bundled_table_path()
    assert path is not None, "litellm's price table ships with litellm"
    return read_table(path)


@pytest.mark.parametrize(
    ("model", "rates"),
    [
        ("claude-haiku-4-5-20251001", (1.0, 5.0)),
        ("anthropic/claude-haiku-4-5-20251001", (1.0, 5.0)),  # the bare name, same provider
        ("claude-sonnet-4-6", (3.0, 15.0)),
        ("openai/gpt-4o-mini", (0.15, 0.6)),
        ("openai/claude-haiku-4-5-20251001", None),  # another provider's entry is not taken
        ("ollama_chat/llama3", None),  # the table's 0 means "not metered": not a price
        ("ollama/llama3", None),
        ("openai/SmolLM2-135M-Instruct", None),
        ("no-such-model", None),
    ],
)
def test_lookup(
    table: dict[str, tuple[str, Price]], model: str, rates: tuple[float, float] | None
) -> None:
    price = lookup(table, model)
    assert (None if price is None else (price.input_per_mtok, price.output_per_mtok)) == rates


def test_read_table_keeps_only_entries_with_both_prices(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
                "a": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
                "b": {"input_cost_per_token": 1e-6},
                "c": {"input_cost_per_token": "cheap", "output_cost_per_token": 1e-6},
                "d": {"input_cost_per_token": -1, "output_cost_per_token": 1e-6},
                "e": "not an entry",
            }
        )
    )
    assert set(read_table(path)) == {"sample_spec", "a"}
    assert read_table(path)["a"][1].input_per_mtok == 1.0


def test_costs_are_tokens_at_the_price_rounded_to_the_nano_dollar() -> None:
    assert usage_cost(HAIKU, Usage(21, 4, 25)) == pytest.approx(4.1e-05, abs=1e-15)
    assert usage_cost(Price(0.075, 0.3, "x"), Usage(1, 1, 2)) == pytest.approx(3.75e-07, abs=1e-15)
    assert usage_cost(HAIKU, None) is None  # usage not reported: not guessed
    assert usage_cost(None, Usage(1, 1, 2)) is None  # no price: unknown, not 0
    assert usage_cost(FREE, None) == 0.0  # free by configuration


def attempt(outcome: Outcome, cost: float | None, usage: Usage | None = None) -> Attempt:
    return Attempt("m", outcome, Category.NONE, "", 1.0, usage=usage, cost_usd=cost)


def test_a_call_costs_the_sum_or_is_unknown() -> None:
    ok = attempt(Outcome.SUCCESS, 4.1e-05)
    skipped = attempt(Outcome.SKIPPED, None)
    assert call_cost([attempt(Outcome.REJECTED, 0.0), skipped, ok]) == pytest.approx(4.1e-05)
    assert call_cost([attempt(Outcome.REJECTED, None), ok]) is None
    assert call_cost([]) == 0.0


def test_the_cost_avoided() -> None:
    answer = attempt(Outcome.SUCCESS, 0.0, Usage(100, 20, 120))
    assert cost_avoided(answer, FREE, HAIKU) == pytest.approx(0.0002)
    assert cost_avoided(answer, None, HAIKU) == pytest.approx(0.0002)  # unpriced answered
    assert cost_avoided(answer, HAIKU, HAIKU) == 0.0  # a priced model answered
    assert cost_avoided(answer, FREE, None) is None  # nothing priced to compare with
    assert cost_avoided(attempt(Outcome.SUCCESS, 0.0), FREE, HAIKU) is None  # no usage


async def test_the_price_book_prefers_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}})
    )
    book = PriceBook(path)
    assert await book.price(ModelSpec("m", timeout=1)) == Price(1.0, 1.0, "litellm:m")
    configured = ModelSpec("m", timeout=1, price_per_mtok=(0.0, 0.0))
    assert await book.price(configured) == Price(0.0, 0.0, "config")
    assert await book.price(ModelSpec("other", timeout=1)) is None
    models = [ModelSpec("other", timeout=1), configured, ModelSpec("m", timeout=1)]
    assert await book.reference(models) == Price(1.0, 1.0, "litellm:m")


def chain_with(model: str) -> dict[str, object]:
    return {"chains": {"default": {"models": [{"model": "m", **json.loads(model)}]}}}


def test_price_and_repair_keys_parse() -> None:
    spec = (
        config.parse(
            chain_with('{"price_per_mtok": {"input": 0.5, "output": 2}, "repair_attempts": 2}'), {}
        )
        .chains["default"]
        .models[0]
    )
    assert (spec.price_per_mtok, spec.repair_attempts) == ((0.5, 2.0), 2)
    spec = config.parse(chain_with("{}"), {}).chains["default"].models[0]
    assert (spec.price_per_mtok, spec.repair_attempts, spec.constraint_notes) == (None, 1, True)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ('{"price_per_mtok": {"input": 1}}', "price_per_mtok.output: required"),
        ('{"price_per_mtok": {"input": -1, "output": 1}}', "price_per_mtok.input: must be"),
        ('{"price_per_mtok": {"input": 1, "output": 1, "cache": 1}}', "price_per_mtok.cache"),
        ('{"price_per_mtok": 3}', "price_per_mtok: expected a table"),
        ('{"repair_attempts": -1}', "repair_attempts: must be 0..5"),
        ('{"repair_attempts": 6}', "repair_attempts: must be 0..5"),
        ('{"constraint_notes": "yes"}', "constraint_notes: expected bool"),
    ],
)
def test_bad_price_and_repair_values_stop_start_up(model: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        config.parse(chain_with(model), {})


def test_the_built_in_local_model_is_free_by_configuration() -> None:
    local, *cloud = config.parse({}, {}).chains["default"].models
    assert local.price_per_mtok == (0.0, 0.0)
    assert all(m.price_per_mtok is None for m in cloud)  # litellm's table prices them


def test_the_embedded_model_is_free_unless_its_entry_gives_a_price() -> None:
    """It runs in the router's own child process: the seed's last resort and a chain's entry
    with ``api_base = "embedded"`` cost 0, unless the entry says otherwise."""
    *_, last = config.parse({}, {"LLM_ROUTER_EMBEDDED": "on"}).chains["default"].models
    assert last.api_base == "embedded"
    assert (last.price_per_mtok, last.repair_attempts) == ((0.0, 0.0), 1)
    name = last.model
    entry = {"model": name, "api_base": "embedded"}
    chains = {"chains": {"default": {"models": [entry]}}}
    (spec,) = config.parse(chains, {"LLM_ROUTER_EMBEDDED": "on"}).chains["default"].models
    assert spec.price_per_mtok == (0.0, 0.0)
    priced = {**entry, "price_per_mtok": {"input": 0.01, "output": 0.02}}
    chains = {"chains": {"default": {"models": [priced]}}}
    (spec,) = config.parse(chains, {"LLM_ROUTER_EMBEDDED": "on"}).chains["default"].models
    assert spec.price_per_mtok == (0.01, 0.02)
