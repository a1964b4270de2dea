"""Repair and constraint notes against a real local model: the local-valid share and the
latency a repair adds.

``python -m bench.repair_local --api-base URL [--model NAME] [--tasks FILE ...]`` sends every
task (default: ``bench/tasks/schema_tasks.json``, the project's schema-bound tasks, and
``bench/tasks/constraint_tasks.json``, constraints grammar decoders drop) through the
router's chain, in process, to one OpenAI-compatible server (llama.cpp's, e.g. the embedded
model's; Ollama's ``/v1`` too), with greedy decoding. The chain has that one model with
``repair_attempts = 2``, so one pass tells, per task, whether the first answer was valid,
whether one repair made it valid, and whether two did, and how long each repair took.

Modes:

- ``native``: the schema goes to the decoder as ``response_format`` (a grammar);
- ``prompted``: ``structured_output = false``, the model sees only the prompt;
- ``dropping``: the decoder is sent the schema without the keywords Ollama's decoder does
  not enforce (``providers/ollama.py``), as a grammar decoder that drops them would build
  it; the answer is validated against the whole schema;
- ``dropping+notes``: the same, with those constraints said in words in a system message
  (``constraint_notes``).

It prints a table and writes everything to a JSON file (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from llm_router_server.metrics.memory import InMemoryMetricsBus
from llm_router_server.pricing.price import Price, usage_cost
from llm_router_server.providers.dispatch import DispatchProvider
from llm_router_server.providers.protocols import WIRES
from llm_router_server.routing.chain import Router
from llm_router_server.routing.judging import DEFAULT_REFUSAL_PATTERNS
from llm_router_server.types import (
    ChainSpec,
    Completion,
    CompletionRequest,
    Message,
    ModelSpec,
    Outcome,
    RouteRequest,
)

ROOT = Path(__file__).resolve().parent.parent
TASKS = [
    ROOT / "bench" / "tasks" / "schema_tasks.json",
    ROOT / "bench" / "tasks" / "constraint_tasks.json",
]
DROPPED = WIRES["ollama_chat"].unenforced
HAIKU = Price(1.0, 5.0, "claude-haiku-4-5-20251001, litellm's table")
REPAIRS = 2
MODES = ("native", "prompted", "dropping", "dropping+notes")


def strip(schema: Any, keywords: Collection[str]) -> Any:
    """``schema`` without ``keywords`` anywhere (what a decoder that drops them enforces)."""
    if isinstance(schema, dict):
        return {k: strip(v, keywords) for k, v in schema.items() if k not in keywords}
    if isinstance(schema, list):
        return [strip(v, keywords) for v in schema]
    return schema


class DroppingProvider:
    """Sends the decoder the schema without ``DROPPED``; otherwise the inner provider."""

    def __init__(self, inner: DispatchProvider) -> None:
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def complete(self, model: ModelSpec, request: CompletionRequest) -> Completion:
        if request.schema is not None:
            request = replace(request, schema=strip(request.schema, DROPPED))
        return await self.inner.complete(model, request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def router_for(mode: str, spec: ModelSpec, provider: DispatchProvider) -> Router:
    native = mode != "prompted"
    spec = replace(spec, structured_output=native, constraint_notes=mode == "dropping+notes")
    return Router(
        {"bench": ChainSpec("bench", (spec,))},
        DroppingProvider(provider) if mode.startswith("dropping") else provider,
        InMemoryMetricsBus(),
        default_chain="bench",
        refusal_patterns=DEFAULT_REFUSAL_PATTERNS,
        unenforced=lambda _: DROPPED,
    )


async def run_task(router: Router, task: Mapping[str, Any]) -> dict[str, Any]:
    request = RouteRequest((Message("user", task["prompt"]),), schema=json.dumps(task["schema"]))
    started = time.perf_counter()
    attempts: Any
    try:
        result = await router.route(request)
        attempts = result.attempts
    except Exception as exc:  # every attempt failed: the error carries them
        attempts = getattr(exc, "attempts", ())
    wall = time.perf_counter() - started
    valid_at = next((a.repair for a in attempts if a.outcome is Outcome.SUCCESS), None)
    answer = next((a for a in attempts if a.outcome is Outcome.SUCCESS), None)
    return {
        "id": task["id"],
        "shape": task.get("shape", ""),
        "valid_at_repair": valid_at,
        "wall_s": round(wall, 3),
        "avoided_usd": usage_cost(HAIKU, answer.usage) if answer is not None else None,
        "attempts": [
            {
                "repair": a.repair,
                "outcome": a.outcome.value,
                "category": a.category.value,
                "reason": a.reason[:200],
                "latency_ms": a.latency_ms,
                "tokens": a.usage.total_tokens if a.usage else None,
            }
            for a in attempts
        ],
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    valid = [
        sum(r["valid_at_repair"] is not None and r["valid_at_repair"] <= k for r in rows)
        for k in range(REPAIRS + 1)
    ]
    first_ms = [r["attempts"][0]["latency_ms"] for r in rows if r["attempts"]]
    repaired = [r for r in rows if r["valid_at_repair"]]
    added = [sum(a["latency_ms"] for a in r["attempts"] if a["repair"]) for r in repaired]
    spent = [sum(a["latency_ms"] for a in r["attempts"] if a["repair"]) for r in rows]
    return {
        "tasks": n,
        "valid_without_repair": valid[0],
        "valid_with_1_repair": valid[1],
        "valid_with_2_repairs": valid[2],
        "first_answer_p50_ms": round(statistics.median(first_ms), 1) if first_ms else None,
        "repair_added_p50_ms_when_it_helped": round(statistics.median(added), 1) if added else None,
        "repair_ms_per_task_mean": round(sum(spent) / n, 1) if n else None,
        "avoided_usd_at_haiku": round(sum(r["avoided_usd"] or 0 for r in rows), 9),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    for path in args.tasks:
        tasks += [{**t, "set": path.stem} for t in json.loads(path.read_text())]
    params: dict[str, Any] = {"max_tokens": args.max_tokens, "temperature": 0}
    if args.api_key:
        params["api_key"] = args.api_key
    spec = ModelSpec(
        f"openai/{args.model}",
        timeout=args.timeout,
        api_base=args.api_base,
        params=params,
        repair_attempts=REPAIRS,
        provider="native",
    )
    provider = DispatchProvider([spec], default_max_tokens=args.max_tokens)
    await provider.start()
    results: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "loadavg_start": os.getloadavg(),
        },
        "model": args.model,
        "note": args.note,
        "modes": {},
    }
    try:
        for mode in args.modes:
            router = router_for(mode, spec, provider)
            rows = []
            for task in tasks:
                row = await run_task(router, task)
                row["set"] = task["set"]
                rows.append(row)
                print(
                    f"  {mode:15} {task['id']:16} valid at repair {row['valid_at_repair']}",
                    flush=True,
                )
            sets = sorted({r["set"] for r in rows})
            results["modes"][mode] = {
                "all": summarise(rows),
                **{s: summarise([r for r in rows if r["set"] == s]) for s in sets},
                "rows": rows,
            }
    finally:
        await provider.aclose()
    results["machine"]["loadavg_end"] = os.getloadavg()
    return results


def ms(value: float | None) -> str:
    """Milliseconds for the table; "-" when there is nothing to measure (no repair helped)."""
    return "-" if value is None else f"{value:.0f}"


def table(results: dict[str, Any]) -> str:
    head = f"{'mode':16}{'set':18}{'tasks':>6}{'valid r0':>9}{'r<=1':>6}{'r<=2':>6}"
    head += f"{'1st p50 ms':>11}{'repair p50 ms':>14}{'repair ms/task':>15}"
    lines = [head]
    for mode, by_set in results["modes"].items():
        for name, s in by_set.items():
            if name == "rows":
                continue
            lines.append(
                f"{mode:16}{name:18}{s['tasks']:>6}{s['valid_without_repair']:>9}"
                f"{s['valid_with_1_repair']:>6}{s['valid_with_2_repairs']:>6}"
                f"{ms(s['first_answer_p50_ms']):>11}"
                f"{ms(s['repair_added_p50_ms_when_it_helped']):>14}"
                f"{ms(s['repair_ms_per_task_mean']):>15}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.repair_local", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--api-base",
        required=True,
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1",
    )
    parser.add_argument("--api-key", default="", help="its API key, if it needs one")
    parser.add_argument(
        "--model", default="local", help="the model name sent (llama.cpp serves one model)"
    )
    parser.add_argument("--tasks", type=Path, nargs="+", default=TASKS, help="task files")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
