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
    │   └── DeadlineExceededError    the caller's deadline ran out first
    └── ProviderError                one model call failed (raised by a Provider)
        ├── ProviderTimeoutError     no answer within the attempt's timeout
        ├── ProviderConnectionError  refused, reset or dropped connection
        ├── ProviderStatusError      the provider answered with an HTTP error status
        ├── ProviderResponseError    the provider's answer was malformed or empty
        └── ProviderRefusalError     the provider reported a safety refusal
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


class ProviderResponseError(ProviderError):
    """The provider's response was malformed or had no answer in it."""


class ProviderRefusalError(ProviderError):
    """The provider reported a safety refusal (for example Claude's ``stop_reason: refusal``)."""
