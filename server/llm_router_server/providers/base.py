"""The provider seam: how the chain asks one model for one completion.

A ``Provider`` turns a ``CompletionRequest`` for a ``ModelSpec`` into a
``Completion`` or raises a ``ProviderError`` subclass (see ``errors.py``). It
never raises anything else on purpose: implementations translate their
library's exceptions at this seam. ``ScriptedProvider`` is the in-process
fake used to test the chain alone.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from llm_router_server.errors import ProviderError
from llm_router_server.types import Completion, CompletionRequest, ModelSpec


class Provider(Protocol):
    """Calls one model once."""

    async def start(self) -> None:
        """Do once, before the first call, what would otherwise slow it (imports, warm-up)."""

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        """Return the model's answer, or raise a ``ProviderError``.

        Must honour ``request.timeout`` and must stop the upstream request when
        the awaiting task is cancelled.
        """

    async def aclose(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class Delay:
    """A scripted step: sleep, then perform ``then``."""

    seconds: float
    then: Step


Step = Completion | ProviderError | Delay


class ScriptedProvider:
    """A ``Provider`` that plays scripted steps per model, for tests of the chain.

    Each call to a model takes that model's next step; a model with no steps
    left answers ``default`` (or fails when there is none). Every call is
    recorded in ``calls`` as ``(model, request)``.
    """

    def __init__(
        self,
        script: Mapping[str, Iterable[Step]] | None = None,
        default: Completion | None = None,
    ) -> None:
        self._steps: dict[str, deque[Step]] = defaultdict(deque)
        for model, steps in (script or {}).items():
            self._steps[model].extend(steps)
        self.default = default
        self.calls: list[tuple[str, CompletionRequest]] = []
        self.cancelled: list[str] = []

    async def start(self) -> None:
        return None

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        self.calls.append((model.model, request))
        queue = self._steps[model.model]
        step: Step | None = queue.popleft() if queue else self.default
        try:
            while isinstance(step, Delay):
                await asyncio.sleep(step.seconds)
                step = step.then
        except asyncio.CancelledError:
            self.cancelled.append(model.model)
            raise
        if step is None:
            raise ProviderError(f"no scripted answer for {model.model}")
        if isinstance(step, ProviderError):
            raise step
        return step

    async def aclose(self) -> None:
        return None
