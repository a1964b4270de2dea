"""The chain's observer seam: who may watch each Route call's attempts as they happen.

Tracing (``tracing/``) plugs in here; the chain itself knows nothing of spans. The
default is no observer (``Router(observer=None)``): the chain then makes no observer
call at all, so an unobserved call costs one ``is None`` test per attempt.

For each attempt the chain calls ``CallObserver.attempt`` when the attempt's turn
starts (before admission: a skipped attempt is watched too) and ``AttemptWatch.end``
exactly once with the recorded ``Attempt`` (also when the attempt is cancelled). The
watch's ``headers`` go with the provider request (W3C ``traceparent``), so the trace
continues upstream. ``CallObserver.finished`` sees the call's event on every exit,
before it is published. All three run in the Route call's own context (contextvars),
so an observer may read what the gRPC layer put there (the Route span).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from llm_router_server.types import Attempt, ChainSpec, ModelSpec, RouteEvent


class AttemptWatch(Protocol):
    """One attempt being watched."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Headers to send with this attempt's provider request; may be empty."""

    def end(self, attempt: Attempt) -> None:
        """The attempt ended as ``attempt`` says. Must not raise."""


class CallObserver(Protocol):
    """Watches Route calls: each attempt, and each call's end."""

    def attempt(self, spec: ModelSpec, chain: ChainSpec, index: int) -> AttemptWatch:
        """The turn of ``spec`` (the ``index``-th attempt of the call) starts now."""

    def finished(self, event: RouteEvent) -> None:
        """The call ended (answered, failed or cancelled). Must not raise."""
