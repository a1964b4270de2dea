"""Per-call cost of judging one ordinary answer, on the event loop's side.

``python -m bench.judging [--server-root PATH]``: a small object schema and a small answer
(the README's example), free text, and, with this checkout's code only, the same small
answer against a schema with a ``pattern`` (judged in a worker: the loop's cost and the
round trip). Prints the CPU time of this process per call (``time.process_time``, best of
5 runs of 400 calls: robust to a busy machine's preemption, unlike wall time), and for the
new code the median wall time per call too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

SCHEMA = json.dumps(
    {
        "type": "object",
        "required": ["action"],
        "properties": {"action": {"enum": ["restart", "escalate"]}, "reason": {"type": "string"}},
    }
)
ANSWER = '{"action": "restart", "reason": "nginx is down"}'
PATTERN = json.dumps({"type": "object", "properties": {"action": {"pattern": "^[a-z]+$"}}})


def per_call_us(fn: Callable[[], object], n: int = 400) -> float:
    """Best of 5: CPU microseconds per call."""
    fn()
    best = math.inf
    for _ in range(5):
        cpu0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - cpu0) / n)
    return best * 1e6


def before() -> dict[str, float]:
    from llm_router_server.routing import judging as j

    refusals = j.RefusalDetector(j.DEFAULT_REFUSAL_PATTERNS)
    schema = j.compile_schema(SCHEMA)  # type: ignore[attr-defined]
    return {
        "small schema + small answer": per_call_us(lambda: j.judge(ANSWER, schema, refusals)),
        "free text": per_call_us(lambda: j.judge("ok", None, refusals)),
    }


async def after() -> dict[str, float]:
    from llm_router_server.routing.judging import DEFAULT_REFUSAL_PATTERNS, RefusalDetector
    from llm_router_server.routing.validation.offload import Validation, ValidationPolicy

    refusals = RefusalDetector(DEFAULT_REFUSAL_PATTERNS)
    validation = Validation(ValidationPolicy())
    schema = await validation.check_schema(SCHEMA)
    pattern = await validation.check_schema(PATTERN)

    async def loop_us(text: str, checked: object, n: int) -> tuple[float, float]:
        """(loop CPU per call, wall time per call) over ``n`` sequential calls."""
        walls = []
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            await validation.judge(text, checked, refusals)  # type: ignore[arg-type]
            walls.append(time.perf_counter() - t0)
        return (time.process_time() - cpu0) / n * 1e6, statistics.median(walls) * 1e6

    results = {}
    for name, text, checked in (
        ("small schema + small answer", ANSWER, schema),
        ("free text", "ok", None),
        ("pattern schema + small answer (worker)", ANSWER, pattern),
    ):
        await loop_us(text, checked, 50)  # warm up (the worker caches the schema)
        best = min([await loop_us(text, checked, 400) for _ in range(5)])
        results[f"{name}: loop CPU"] = best[0]
        results[f"{name}: wall"] = best[1]
    validation.pool.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.judging")
    parser.add_argument("--server-root", help="measure that checkout's judge() (before)")
    args = parser.parse_args()
    if args.server_root:
        sys.path.insert(0, str(Path(args.server_root) / "server"))
        found = before()
    else:
        found = asyncio.run(after())
    for key, value in found.items():
        print(f"{key}: {value:.1f} us")
