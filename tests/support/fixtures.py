"""pytest fixtures for the wire-level fakes: ``upstream`` starts fake providers, ``api_keys``
gives the cloud providers keys that the tests can look for in what the router says."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.upstream import Behaviour, FakeUpstream

ANTHROPIC_KEY = "sk-ant-api03-TESTKEY0123456789"
OPENAI_KEY = "sk-proj-TESTKEY0123456789"

Upstream = Callable[..., FakeUpstream]
"""The type of the ``upstream`` fixture."""


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A factory: ``up = upstream()`` starts a ``FakeUpstream`` (``upstream(behaviour)``: one
    whose ``default`` is ``behaviour``); all are closed at teardown."""
    started: list[FakeUpstream] = []

    def start(default: Behaviour | None = None) -> FakeUpstream:
        fake = FakeUpstream()
        if default is not None:
            fake.default = default
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.close()


@pytest.fixture
def api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ANTHROPIC_API_KEY`` and ``OPENAI_API_KEY`` set to ``ANTHROPIC_KEY`` and ``OPENAI_KEY``."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
