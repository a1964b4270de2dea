"""``ScriptedProvider``: an in-process ``Provider`` playing scripted steps, to test the chain."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llm_router_server.errors import ProviderError
from llm_router_server.types import Completion, CompletionRequest, ModelSpec


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
