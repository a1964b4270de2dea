"""The router's own exceptions.

Exception tree (for each ``ProviderError``: its ``category``, the reason the chain
records for the attempt, and its ``breaker_effect``, what it does to the model's
circuit)::

    LLMRouterError
    ├── ConfigError                  bad configuration; stops start-up
    ├── InvalidRequestError          bad Route input; no model was called
    │   └── UnknownChainError        the request named a chain that is not configured
    ├── ChainFailedError             no answer; carries every attempt made
    │   ├── AllModelsFailedError     every model of the chain was rejected
    │   ├── DeadlineExceededError    the caller's deadline ran out first
    │   └── RefusedError             a provider's safety refusal ended the call
    └── ProviderError                one model call failed          PROVIDER_ERROR   FAILURE
        ├── ProviderTimeoutError     no answer within its time      TIMEOUT          FAILURE
        │   ├── ProviderHangError        none in its own timeout    TIMEOUT          HANG
        │   └── ProviderCutShortError    its circuit opened         TIMEOUT          NEUTRAL
        ├── ProviderConnectionError  refused, reset, dropped        PROVIDER_ERROR   FAILURE
        │   └── ProviderUnreachableError  never connected (no bill) PROVIDER_ERROR   FAILURE
        ├── ProviderStatusError      an HTTP error status           PROVIDER_ERROR   FAILURE
        │   ├── ProviderRateLimitError       429, Retry-After       RATE_LIMITED     OPENS
        │   ├── ProviderOverloadedError      5xx, 529               PROVIDER_ERROR   FAILURE
        │   ├── ProviderAuthenticationError  401/403                AUTHENTICATION   OPENS
        │   └── ProviderContextWindowError   prompt too long        CONTEXT_WINDOW   NEUTRAL
        ├── ProviderResponseError    malformed, truncated, empty    PROVIDER_ERROR   FAILURE
        │   └── ProviderEmptyAnswerError no answer text         PROVIDER_ERROR   FAILURE
        └── ProviderRefusalError     a safety refusal (policy)      SAFETY_REFUSAL   SUCCESS

Breaker effects (``BreakerEffect``; the rules are in ``breaker/rules.py``): FAILURE
counts towards opening the circuit; OPENS opens it at once on the provider's own
word, a rate limit for its ``retry_after`` (or the configured cool-down), an
authentication error for the longest cool-down (and is logged as an error), and
nothing probes the model before then; HANG (no answer for the model's whole
timeout) opens it at once too, and background probes find when the model answers
again; NEUTRAL says nothing about the model's health; SUCCESS means the model
answered (a refusal is an answer). No class is retried on the same model within a
call. A new error class is one edit here: the chain and the breaker read these
attributes.

Where foreign exceptions become these: at the provider seam, each provider adapter
translates its own library's exceptions, most specific first, ``raise ... from exc``
(under ``providers/``: one translation for the native HTTP path's aiohttp errors,
one for litellm's, plus litellm failing to load; HTTP error statuses map to the
classes above through one function both paths share). The chain itself makes
``ProviderTimeoutError`` or ``ProviderHangError`` (``timeout_error``) when an attempt
outlives its time, and the breaker's watch on calls in flight ``ProviderCutShortError``.
Router errors become gRPC status codes in one table at the servicer
(``service/convert.py``). Nothing else translates.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from llm_router_server.types import Category

if TYPE_CHECKING:
    from llm_router_server.types import Attempt


class LLMRouterError(Exception):
    """Base of every exception the router raises on purpose."""


class ConfigError(LLMRouterError):
    """The configuration is invalid. The message names the offending key."""


class InvalidRequestError(LLMRouterError):
    """A Route request is malformed. The message says what is wrong."""


class UnknownChainError(InvalidRequestError):
    """A Route request named a chain that the configuration does not define."""


class ChainFailedError(LLMRouterError):
    """The chain produced no answer. ``attempts`` lists what was tried, in order."""

    def __init__(
        self, message: str, *, chain: str, attempts: Sequence[Attempt], latency_ms: float
    ) -> None:
        super().__init__(message)
        self.chain = chain
        self.attempts = tuple(attempts)
        self.latency_ms = latency_ms


class AllModelsFailedError(ChainFailedError):
    """Every model of the chain was rejected."""


class DeadlineExceededError(ChainFailedError):
    """The caller's deadline ran out before any model gave a valid answer."""


class RefusedError(ChainFailedError):
    """A provider blocked the answer for safety and the chain's refusal policy is ``stop``."""


class BreakerEffect(enum.Enum):
    """What a failed call says about its model's health, for the circuit breaker."""

    FAILURE = "failure"
    """Counts towards opening the circuit."""
    OPENS = "opens"
    """Opens the circuit at once, for ``ProviderError.open_for`` seconds: the provider's own
    word (a rate limit, a refused key), so nothing probes the model before then."""
    HANG = "hang"
    """Opens the circuit at once: the model gave nothing for its whole timeout. Background
    probes close it again as soon as the model answers."""
    NEUTRAL = "neutral"
    """Says nothing about the model's health: the circuit is left as it is."""
    SUCCESS = "success"
    """The model answered (a refusal is an answer): counts as a success."""


class ProviderError(LLMRouterError):
    """One model call failed.

    The message is one clean, bounded line, safe to show to callers: no
    traceback, no secret.
    """

    category: ClassVar[Category] = Category.PROVIDER_ERROR
    """The reason category of the rejected attempt."""
    breaker_effect: ClassVar[BreakerEffect] = BreakerEffect.FAILURE
    """What the error does to the model's circuit."""
    billed: ClassVar[bool | None] = None
    """Whether the provider may bill the call: None (unknown: a timeout, a dropped
    connection or a malformed answer may have used tokens), False when no model ran (no
    connection was made, or the provider answered with an HTTP error status: providers do
    not bill those). An attempt that is not billed costs 0, not unknown."""

    @property
    def open_for(self) -> float | None:
        """With ``BreakerEffect.OPENS``: seconds to stay open (capped by the breaker's
        policy); None: the policy's cool-down."""
        return None


class ProviderTimeoutError(ProviderError):
    """The model did not answer within the attempt's time (e.g. what was left of the
    caller's deadline)."""

    category = Category.TIMEOUT


class ProviderHangError(ProviderTimeoutError):
    """The model gave no answer for its whole own timeout: it hangs (or is far slower than
    its timeout says), so its circuit opens at once rather than after more callers waited
    as long."""

    breaker_effect = BreakerEffect.HANG


class ProviderCutShortError(ProviderTimeoutError):
    """The call was still waiting when its model's circuit opened (other calls to it got no
    answer): it stops waiting and the chain moves on. The circuit already knows."""

    breaker_effect = BreakerEffect.NEUTRAL


def timeout_error(waited: float, own_timeout: float) -> ProviderTimeoutError:
    """The error of an attempt that got no answer within ``waited`` seconds: a hang when
    that was the model's whole ``own_timeout``, else a timeout (the caller's deadline)."""
    if waited < own_timeout:
        return ProviderTimeoutError(f"no answer within {waited:.3g}s (caller's deadline)")
    return ProviderHangError(f"no answer within {waited:.3g}s (timeout)")


class ProviderConnectionError(ProviderError):
    """The connection to the provider was refused, reset or dropped."""


class ProviderUnreachableError(ProviderConnectionError):
    """No connection was made (refused, no such host): no model ran, nothing is billed."""

    billed = False


class ProviderStatusError(ProviderError):
    """The provider answered with an HTTP error status."""

    billed = False

    def __init__(self, message: str, *, status_code: int | None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ProviderRateLimitError(ProviderStatusError):
    """HTTP 429. ``retry_after`` is the provider's Retry-After in seconds, if it sent one."""

    category = Category.RATE_LIMITED
    breaker_effect = BreakerEffect.OPENS

    def __init__(
        self, message: str, *, status_code: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after

    @property
    def open_for(self) -> float | None:
        return self.retry_after


class ProviderOverloadedError(ProviderStatusError):
    """HTTP 5xx (or Anthropic's 529): the provider is overloaded or failing."""


class ProviderAuthenticationError(ProviderStatusError):
    """HTTP 401/403: the API key is missing, wrong or lacks permission. A configuration
    problem: retrying will not help."""

    category = Category.AUTHENTICATION
    breaker_effect = BreakerEffect.OPENS

    @property
    def open_for(self) -> float | None:
        return math.inf  # the policy's cap: the key will not fix itself


class ProviderContextWindowError(ProviderStatusError):
    """The prompt (plus max_tokens) does not fit the model's context window."""

    category = Category.CONTEXT_WINDOW
    breaker_effect = BreakerEffect.NEUTRAL


class ProviderResponseError(ProviderError):
    """The provider's response was malformed or had no answer in it."""


class ProviderEmptyAnswerError(ProviderResponseError):
    """A well-formed response without any answer text (a thinking model's first tokens go
    to its thinking). A failed call, but it shows the model runs: a probe counts it."""


class ProviderRefusalError(ProviderError):
    """The provider reported a safety refusal (for example Claude's ``stop_reason: refusal``)."""

    category = Category.SAFETY_REFUSAL
    breaker_effect = BreakerEffect.SUCCESS
