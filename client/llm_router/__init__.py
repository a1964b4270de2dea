"""Python client for the llm-router gRPC service.

The generated code is ``llm_router.v1`` (``router_pb2``, ``router_pb2_grpc``);
``llm_router.client`` is a thin typed wrapper over it.
"""

from llm_router.client import (
    AllModelsFailedError,
    AsyncRouterClient,
    Attempt,
    ChainFailedError,
    DeadlineExceededError,
    InvalidRequestError,
    RouterClient,
    RouterError,
    RouteResult,
    Usage,
)

__all__ = [
    "AllModelsFailedError",
    "AsyncRouterClient",
    "Attempt",
    "ChainFailedError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "RouteResult",
    "RouterClient",
    "RouterError",
    "Usage",
]
