"""Python client for the llm-router gRPC service.

``RouterClient`` (blocking) and ``AsyncRouterClient`` (asyncio) send Route calls and
watch metrics; ``Connection`` and ``TLS`` say how to reach the server (target(s), bearer
token, TLS), also from ``LLM_ROUTER_*`` variables; errors are typed (``llm_router.errors``).
The generated code is ``llm_router.v1`` (``router_pb2``, ``router_pb2_grpc``).
"""

from llm_router.client import DEFAULT_TIMEOUT, AsyncRouterClient, RouterClient
from llm_router.connection import DEFAULT_TARGET, TLS, Connection
from llm_router.errors import (
    AllModelsFailedError,
    ChainFailedError,
    ConnectionFailedError,
    DeadlineExceededError,
    InvalidRequestError,
    RefusedError,
    RouterError,
    UnauthenticatedError,
)
from llm_router.results import Attempt, RouteResult, Usage
from llm_router.watch import (
    CircuitChange,
    MetricsSnapshot,
    ModelCounters,
    RouteEvent,
    WatchMessage,
)

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "TLS",
    "AllModelsFailedError",
    "AsyncRouterClient",
    "Attempt",
    "ChainFailedError",
    "CircuitChange",
    "Connection",
    "ConnectionFailedError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "MetricsSnapshot",
    "ModelCounters",
    "RefusedError",
    "RouteEvent",
    "RouteResult",
    "RouterClient",
    "RouterError",
    "UnauthenticatedError",
    "Usage",
    "WatchMessage",
]
