"""The router's own exceptions.

Foreign exceptions are translated into these in exactly two places: provider
libraries' errors at the provider seam (``providers/litellm_provider.py``), and
these into gRPC status codes at the servicer (``servicer.py``, one table).

Exception tree::

    LLMRouterError
    ├── ConfigError                  bad configuration; stops start-up
    ├── InvalidRequestError          bad Route input; no model was called
    │   └── UnknownChainError        the request named a chain that is not configured
    ├── ChainFailedError             no answer; carries every attempt made
    │   ├── AllModelsFailedError     every model of the chain was rejected
    │   ├── DeadlineExceededError    the caller's deadline ran out first
    │   └── RefusedError             a provider's safety refusal ended the call
    └── ProviderError                one model call failed (raised by a Provider)
        ├── ProviderTimeoutError     no answer within the attempt's timeout (silent upstream)
        ├── ProviderConnectionError  refused, reset or dropped connection
        ├── ProviderStatusError      the provider answered with an HTTP error status
        │   ├── ProviderRateLimitError       429; ``retry_after`` from Retry-After
        │   ├── ProviderOverloadedError      5xx, 529: overloaded or failing
        │   ├── ProviderAuthenticationError  401/403: bad or missing credentials
        │   └── ProviderContextWindowError   the prompt exceeds the context window
        ├── ProviderResponseError    the provider's answer was malformed, truncated or empty
        └── ProviderRefusalError     the provider reported a safety refusal (content policy)

What the chain does with each class (the circuit breaker, ``breaker.py``):
rate limited opens the model's circuit for ``retry_after`` (or the configured
cool-down); authentication errors open it at once and are logged as errors;
timeouts, connection errors, overload and malformed bodies count towards
opening it; a context-window error, a refusal or a bad answer says nothing
about the model's health. No class is retried on the same model within a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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


class ProviderError(LLMRouterError):
    """One model call failed.

    The message is one clean, bounded line, safe to show to callers: no
    traceback, no secret.
    """


class ProviderTimeoutError(ProviderError):
    """The model did not answer within the attempt's timeout."""


class ProviderConnectionError(ProviderError):
    """The connection to the provider was refused, reset or dropped."""


class ProviderStatusError(ProviderError):
    """The provider answered with an HTTP error status."""

    def __init__(self, message: str, *, status_code: int | None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ProviderRateLimitError(ProviderStatusError):
    """HTTP 429. ``retry_after`` is the provider's Retry-After in seconds, if it sent one."""

    def __init__(
        self, message: str, *, status_code: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class ProviderOverloadedError(ProviderStatusError):
    """HTTP 5xx (or Anthropic's 529): the provider is overloaded or failing."""


class ProviderAuthenticationError(ProviderStatusError):
    """HTTP 401/403: the API key is missing, wrong or lacks permission. A configuration
    problem: retrying will not help."""


class ProviderContextWindowError(ProviderStatusError):
    """The prompt (plus max_tokens) does not fit the model's context window."""


class ProviderResponseError(ProviderError):
    """The provider's response was malformed or had no answer in it."""


class ProviderRefusalError(ProviderError):
    """The provider reported a safety refusal (for example Claude's ``stop_reason: refusal``)."""
