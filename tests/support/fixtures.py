"""pytest fixtures for the wire-level fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.upstream import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[Callable[[], FakeUpstream]]:
    """A factory: ``up = upstream()`` starts a ``FakeUpstream``; all are closed at teardown."""
    started: list[FakeUpstream] = []

    def start() -> FakeUpstream:
        fake = FakeUpstream()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.close()
