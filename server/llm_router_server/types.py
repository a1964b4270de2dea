"""Plain data the chain works on: messages, models, completions, attempts, results, events.

Nothing here does I/O or imports grpc, litellm or redis.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the option types live beside the configuration that reads them
    from llm_router_server.config.model import ProbeMode, ProviderChoice, RefusalPolicy

ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True)
class Message:
    """One turn of the conversation."""

    role: str
    """"system", "user" or "assistant"."""
    content: str
    """The text of the turn."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a chain, as configured."""

    model: str
    """The litellm model string, e.g. ``ollama_chat/qwen2.5:7b``."""
    timeout: float
    """Seconds this model may take, before the caller's deadline shortens it."""
    api_base: str | None = None
    """Base URL of the provider's API; None uses the provider's default."""
    structured_output: bool = True
    """Send the caller's schema to the provider as native structured output."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the provider call (e.g. ``temperature``)."""
    provider: ProviderChoice = "auto"
    """Which path calls the model: "auto" (native HTTP when it speaks the model's
    protocol, else litellm), "native" or "litellm" (see ``providers/dispatch.py``)."""
    max_concurrency: int = 0
    """Most calls in flight to this model at once; when full the chain skips it. 0: no limit."""
    warm_up: bool = False
    """Send one tiny call at start-up, in the background, so the model is loaded."""
    repair_attempts: int = 0
    """How many times the model is asked again, with its answer and the validation error,
    when its answer is not JSON or fails the caller's schema (0: never). The configuration's
    default is ``config.model.DEFAULT_REPAIR_ATTEMPTS``; a spec built in code repairs only
    when it says so."""
    constraint_notes: bool = True
    """Say in words, in a system message, the schema constraints the model's decoder is
    known not to enforce (see ``providers/protocols.py``); the answer is validated against
    the caller's schema either way."""
    price_per_mtok: tuple[float, float] | None = None
    """USD per million (input, output) tokens; None: litellm's price table, if it has one."""
    probe: ProbeMode = "auto"
    """How its open circuit learns that it answers again: "background" one-token probes,
    a "live" call after the cool-down, or "auto" (see ``config.model.ProbeMode``)."""


@dataclass(frozen=True)
class ChainSpec:
    """A named, ordered list of models: the first valid answer wins."""

    name: str
    models: tuple[ModelSpec, ...]
    hedge_after_ms: float = 0.0
    """When > 0: if a model has not answered after this long, start the next one in
    parallel; the first valid answer wins. 0: strictly one model at a time."""
    refusal_policy: RefusalPolicy = "fall_through"
    """What a provider's safety refusal does: ``fall_through`` to the next model, or
    ``stop`` the call (PERMISSION_DENIED)."""


@dataclass(frozen=True)
class Usage:
    """Token counts a provider reported for one call."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Completion:
    """What a provider returned for one call."""

    text: str
    usage: Usage | None = None
    truncated: bool = False
    """The answer was cut at the token limit (finish reason ``length``)."""
    model: str = ""
    """The model name the provider says answered (empty when it did not say)."""


NO_HEADERS: Mapping[str, str] = MappingProxyType({})
"""No extra headers (shared, read-only)."""


@dataclass(frozen=True)
class CompletionRequest:
    """What the chain asks a provider for in one call."""

    messages: tuple[Message, ...]
    schema: Mapping[str, Any] | None
    """The caller's JSON Schema, or None for free text."""
    timeout: float
    """Seconds the provider may take; the chain enforces it as well."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra HTTP headers for the provider request (the W3C ``traceparent`` when tracing)."""


class Outcome(enum.Enum):
    """How one attempt ended (``AttemptOutcome`` in the proto)."""

    SUCCESS = "success"
    REJECTED = "rejected"
    INVALID = "invalid"
    SKIPPED = "skipped"


class Category(enum.Enum):
    """Why an attempt was not accepted (``ReasonCategory`` in the proto)."""

    NONE = "none"
    TIMEOUT = "timeout"
    PROVIDER_ERROR = "provider_error"
    REFUSAL = "refusal"
    INVALID_JSON = "invalid_json"
    SCHEMA_MISMATCH = "schema_mismatch"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    CIRCUIT_OPEN = "circuit_open"
    SAFETY_REFUSAL = "safety_refusal"
    SATURATED = "saturated"
    CONTEXT_WINDOW = "context_window"
    AUTHENTICATION = "authentication"
    RATE_LIMITED = "rate_limited"
    VALIDATION_TIMEOUT = "validation_timeout"


@dataclass(frozen=True)
class Attempt:
    """One model's turn in a Route call."""

    model: str
    outcome: Outcome
    category: Category
    reason: str
    """One human-readable line; empty on success."""
    latency_ms: float
    usage: Usage | None = None
    repair: int = 0
    """0 for the model's first answer in the call; n for its n-th repair (the same model
    asked again with its previous answer and why it was not valid)."""
    cost_usd: float | None = None
    """What the attempt cost in USD; None when unknown (no price, or no usage reported)."""
    response_model: str = ""
    """The model name the provider reported in its answer; empty when there was none."""


@dataclass(frozen=True)
class RouteRequest:
    """A Route call as the chain sees it (already decoded from the wire)."""

    messages: tuple[Message, ...]
    schema: str = ""
    """JSON Schema text; empty for a free-text answer."""
    context: str = ""
    chain: str = ""
    """Chain name; empty for the default chain."""


@dataclass(frozen=True)
class RouteResult:
    """The accepted answer and how it was reached."""

    content: Any
    """Parsed JSON when the request had a schema, else the answer text."""
    raw_text: str
    model_used: str
    attempts: tuple[Attempt, ...]
    latency_ms: float
    chain: str
    cost_usd: float | None = None
    """The attempts' costs summed; None when any attempt's cost is unknown."""
    cost_avoided_usd: float | None = None
    """What the answer would have cost on the chain's first priced model, when a model
    without a price answered (0 when a priced one did; None when unknown)."""


class RouteStatus(enum.Enum):
    """How a whole Route call ended."""

    OK = "ok"
    ALL_FAILED = "all_failed"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CANCELLED = "cancelled"
    REFUSED = "refused"


@dataclass(frozen=True)
class RouteEvent:
    """One finished Route call, for metrics. Holds no prompt or answer text."""

    timestamp: float
    """Unix time when the call finished."""
    status: RouteStatus
    chain: str
    context: str
    model_used: str
    """The model that answered, or ``"none"``."""
    latency_ms: float
    attempts: tuple[Attempt, ...]
    metrics_snapshot: Mapping[str, Mapping[str, int]]
    """Per-model ``success``/``fallback``/``error`` counters after this call."""
    event_id: str = ""
    """Set by the metrics bus: a Redis Stream id (``"1718000000000-0"``), in-process too."""
    replica_id: str = ""
    """Set by the metrics bus: the replica that handled the call."""
    cost_avoided_usd: float | None = None
    """As ``RouteResult.cost_avoided_usd``; None also when no answer was accepted."""
    local_answer: bool = False
    """The accepted answer came from a model without a price (or priced at zero)."""


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock by which the whole call must end."""

    expires_at: float = math.inf

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """A deadline ``seconds`` from now; None means no deadline."""
        if seconds is None:
            return cls()
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left (may be negative); ``inf`` when there is no deadline."""
        return self.expires_at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0
