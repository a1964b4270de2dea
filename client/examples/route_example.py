"""A typed use of the Python client, type-checked by `mypy --strict` in ./scripts/test.

python client/examples/route_example.py [--target 127.0.0.1:50051] "nginx is down. What now?"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llm_router import AllModelsFailedError, InvalidRequestError, RouterClient, RouteResult

SCHEMA = {
    "type": "object",
    "required": ["action"],
    "properties": {"action": {"enum": ["restart", "escalate"]}},
}


def decide(client: RouterClient, problem: str) -> str:
    """Ask the chain what to do; returns "restart" or "escalate"."""
    result: RouteResult = client.route(
        [{"role": "user", "content": problem}],
        schema=SCHEMA,
        context="example.decide",
        timeout=40,
    )
    action = result.content["action"] if isinstance(result.content, dict) else None
    if action not in ("restart", "escalate"):
        raise ValueError(f"unexpected answer from {result.model_used}: {result.content!r}")
    return str(action)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ask llm-router what to do about a problem.")
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("problem", nargs="?", default="nginx is down. What now?")
    args = parser.parse_args(argv)
    with RouterClient(args.target) as client:
        try:
            print(decide(client, args.problem))
        except AllModelsFailedError as exc:
            for attempt in exc.attempts:
                print(
                    f"{attempt.model}: {attempt.reason_category}: {attempt.reason}", file=sys.stderr
                )
            return 1
        except InvalidRequestError as exc:
            print(f"bad request: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
