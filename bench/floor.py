"""The gRPC floor: a ``Router`` server whose ``Route`` answers at once, calling no model.

``python -m bench.floor PORT`` serves ``llm_router.v1.Router`` on 127.0.0.1:PORT
with the same grpc.aio server set-up as the real one but no chain and no
provider; the bench's ``grpc-floor`` row is what any Route costs before the
router does anything.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

from llm_router.v1 import router_pb2, router_pb2_grpc

ANSWER = router_pb2.RouteResponse(raw_text="ok", model_used="none", chain="floor")
ANSWER.content.string_value = "ok"


class FloorServicer(router_pb2_grpc.RouterServicer):
    async def Route(  # noqa: N802 (gRPC method name)
        self, request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> router_pb2.RouteResponse:
        return ANSWER


async def serve(port: int) -> None:
    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServicer_to_server(FloorServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
