"""Shared test set-up. Fixtures live in tests/support/, beside the fakes and builders they serve."""

import os

import pytest

# litellm fetches a model-cost map from the internet at import unless this is set
# before it is imported; tests never reach the internet.
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

pytest_plugins = ["tests.support.fixtures", "tests.support.server", "tests.support.redis_server"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (long load/soak variants)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
