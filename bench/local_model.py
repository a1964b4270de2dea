"""The embedded model in numbers: start-up, tokens/s, Route over a direct call, valid shares.

``python -m bench.local_model`` (needs the "local" extra and the model: ``./scripts/setup``)
starts, each in its own process on 127.0.0.1: the embedded llama.cpp server
(``EmbeddedServer``, as the router starts it) and the router (``llm-router serve``)
with two chains that call that same server, ``native`` (the schema goes as
``response_format``, which llama.cpp turns into a grammar) and ``prompted``
(``structured_output = false``: the model sees only the prompt). It reports:

- start-up: the embedded server from spawn to a healthy ``/health`` (model loaded),
  and ``llm-router serve`` with the embedded model in its chain, start to SERVING;
- tokens/s: llama.cpp's own decode and prompt rates (``timings``), on free text;
- Route over direct: for every task of ``bench/tasks/schema_tasks.json`` the same
  request (native structured output, greedy decoding, so the same answer) sent
  straight to llama.cpp and through ``Route``, after one untimed call that fills
  llama.cpp's prompt cache, ``--repeat`` times each in alternating order; per task
  the least time of each (other work on the machine only adds time), then the median
  over tasks of the difference and of the ratio;
- local-valid share: how many tasks' answers validate against their schema,
  through ``native`` and through ``prompted``, by attempt outcome.

It writes a table to stdout and everything to a JSON file (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import free_port, start_server, stop
from llm_router import AsyncRouterClient, ChainFailedError, RouteResult
from llm_router_server.embedded.model import locate
from llm_router_server.embedded.process import EmbeddedServer
from llm_router_server.embedded.settings import EmbeddedConfig

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "bench" / "tasks" / "schema_tasks.json"
MAX_TOKENS = 256
TIMEOUT = 120


def chains_config(port: int, api_base: str, key: str, name: str) -> str:
    model = (
        f'model = "openai/{name}", api_base = "{api_base}", timeout = {TIMEOUT}, '
        f'params = {{ max_tokens = {MAX_TOKENS}, temperature = 0, api_key = "{key}" }}'
    )
    return f"""
default_chain = "native"
[server]
listen = "127.0.0.1:{port}"
grace_seconds = 1
[chains.native]
models = [{{ {model} }}]
[chains.prompted]
models = [{{ {model}, structured_output = false }}]
"""


def embedded_config(port: int, threads: int) -> str:
    return f"""
[server]
listen = "127.0.0.1:{port}"
grace_seconds = 1
[embedded]
enabled = true
threads = {threads}
"""


def direct_body(name: str, task: dict[str, Any] | None, prompt: str) -> dict[str, Any]:
    """What the router's native path sends for this task (see providers/http_provider.py)."""
    body: dict[str, Any] = {
        "model": name,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }
    if task is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": task["schema"], "strict": False},
        }
    return body


async def direct(
    session: aiohttp.ClientSession, server: EmbeddedServer, body: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    async with session.post(
        f"{server.api_base}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
    ) as response:
        answer: dict[str, Any] = await response.json()
        response.raise_for_status()
    return time.perf_counter() - started, answer


async def route(
    client: AsyncRouterClient, chain: str, task: dict[str, Any]
) -> tuple[float, RouteResult | None, str]:
    """Latency, the result (None when the model's answer was rejected) and the outcome:
    "success" or the attempt's reason category."""
    messages = [{"role": "user", "content": task["prompt"]}]
    started = time.perf_counter()
    try:
        result = await client.route(messages, task["schema"], chain=chain, timeout=TIMEOUT + 10)
    except ChainFailedError as exc:
        outcome = exc.attempts[0].reason_category if exc.attempts else str(exc)
        return time.perf_counter() - started, None, outcome
    return time.perf_counter() - started, result, "success"


async def startup_times(threads: int, rounds: int) -> dict[str, list[float]]:
    """Spawn-to-healthy of the embedded server, and serve-to-SERVING of a router using it."""
    gguf = locate()
    child: list[float] = []
    serving: list[float] = []
    for _ in range(rounds):
        server = EmbeddedServer(EmbeddedConfig(enabled=True, threads=threads), gguf)
        await server.start()
        child.append(server.startup_seconds)
        await server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            port = free_port()
            config = Path(tmp) / "embedded.toml"
            config.write_text(embedded_config(port, threads))
            log = Path(tmp) / f"serve-{i}.log"
            running = await start_server(config, port, log)
            serving.append(running.serving_s)
            stop(running.proc)
    return {"embedded_spawn_to_healthy_s": child, "serve_to_serving_s": serving}


async def tokens_per_second(
    session: aiohttp.ClientSession, server: EmbeddedServer, name: str
) -> dict[str, float]:
    decode, prompt = [], []
    for i in range(3):
        body = direct_body(name, None, f"Write a long story about a lighthouse keeper, part {i}.")
        body.update(max_tokens=128, ignore_eos=True)
        _, answer = await direct(session, server, body)
        decode.append(answer["timings"]["predicted_per_second"])
        prompt.append(answer["timings"]["prompt_per_second"])
    return {
        "decode_tokens_per_s": statistics.median(decode),
        "prompt_tokens_per_s": statistics.median(prompt),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=EmbeddedConfig.threads)
    parser.add_argument("--startup-rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="only the first N tasks")
    parser.add_argument("--repeat", type=int, default=3, help="timed pairs per task")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args()
    tasks: list[dict[str, Any]] = json.loads(TASKS.read_text())
    if args.limit:
        tasks = tasks[: args.limit]
    load_before = os.getloadavg()

    startup = await startup_times(args.threads, args.startup_rounds)
    gguf = locate()
    name = gguf.stem
    server = EmbeddedServer(EmbeddedConfig(enabled=True, threads=args.threads), gguf)
    await server.start()
    per_task: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = Path(tmp) / "bench.toml"
        config.write_text(chains_config(port, server.api_base, server.api_key, name))
        router = await start_server(config, port, Path(tmp) / "serve.log")
        try:
            async with aiohttp.ClientSession() as session, AsyncRouterClient(router.target) as stub:
                rates = await tokens_per_second(session, server, name)
                for task in tasks:
                    body = direct_body(name, task, task["prompt"])
                    await direct(session, server, body)  # fills the prompt cache
                    direct_times, route_times = [], []
                    for i in range(args.repeat):  # pairs, in alternating order
                        for first in ("direct", "route") if i % 2 else ("route", "direct"):
                            if first == "direct":
                                direct_s, answer = await direct(session, server, body)
                                direct_times.append(direct_s)
                            else:
                                route_s, reply, native = await route(stub, "native", task)
                                route_times.append(route_s)
                    # The least of each: the machine's other work only ever adds time.
                    direct_s, route_s = min(direct_times), min(route_times)
                    _, other, prompted = await route(stub, "prompted", task)
                    per_task.append(
                        {
                            "id": task["id"],
                            "direct_ms": direct_s * 1000,
                            "route_ms": route_s * 1000,
                            "same_text": reply is not None
                            and reply.raw_text == answer["choices"][0]["message"]["content"],
                            "completion_tokens": answer["usage"]["completion_tokens"],
                            "native": native,
                            "native_text": reply.raw_text[:120] if reply else None,
                            "prompted": prompted,
                            "prompted_text": other.raw_text[:120] if other else None,
                        }
                    )
                    print(
                        f"{task['id']:12} direct {direct_s * 1000:7.0f} ms  route "
                        f"{route_s * 1000:7.0f} ms  native: {native[:60]:60}  prompted: "
                        f"{prompted[:60]}",
                        flush=True,
                    )
        finally:
            stop(router.proc)
            await server.stop()

    n = len(per_task)
    native_valid = sum(t["native"] == "success" for t in per_task)
    prompted_valid = sum(t["prompted"] == "success" for t in per_task)
    overhead = [t["route_ms"] - t["direct_ms"] for t in per_task]
    ratio = [t["route_ms"] / t["direct_ms"] for t in per_task]
    summary = {
        **{k: statistics.median(v) for k, v in startup.items()},
        **rates,
        "tasks": n,
        "native_valid": native_valid,
        "prompted_valid": prompted_valid,
        "native_valid_share": native_valid / n,
        "prompted_valid_share": prompted_valid / n,
        "direct_p50_ms": statistics.median(t["direct_ms"] for t in per_task),
        "route_p50_ms": statistics.median(t["route_ms"] for t in per_task),
        "route_minus_direct_p50_ms": statistics.median(overhead),
        "route_over_direct_p50_ratio": statistics.median(ratio),
        "same_answer_share": sum(t["same_text"] for t in per_task) / n,
    }
    print()
    for key, value in summary.items():
        print(f"{key:32} {value:.3f}" if isinstance(value, float) else f"{key:32} {value}")
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "threads": args.threads,
            "model": gguf.name,
        },
        "startup": startup,
        "summary": summary,
        "tasks": per_task,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
