"""The slower rows of ``bench.run``: a local outage and the real embedded model.

Each runs its own bench module in a child process (``bench/outage.py``,
``bench/local_model.py``) at a scale that fits a bench run, reads the JSON it
writes, and returns the few figures the table shows (the whole result goes into
the run's JSON). ``python -m bench.run --rows outage,local-model`` asks for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# name -> (module, arguments at bench scale)
EXTRA = {
    "outage": ("bench.outage", ["--protocols", "ollama", "--faults", "503,hang"]),
    "local-model": (
        "bench.local_model",
        ["--limit", "12", "--repeat", "1", "--startup-rounds", "1"],
    ),
}


def run_extra(name: str, env: dict[str, str], timeout: float = 900) -> dict[str, Any]:
    """Run one extra bench module; its JSON result, or ``{"error": ...}``."""
    module, args = EXTRA[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        proc = subprocess.run(
            [sys.executable, "-m", module, *args, "--out", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout)[-2000:]
            return {"error": f"{module} exited {proc.returncode}", "output": tail}
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def outage_lines(result: dict[str, Any]) -> list[str]:
    """One line per outage row: time to an answer during it, and back to local after it."""
    if "error" in result:
        return [f"outage: {result['error']}"]
    lines = []
    for row in result["rows"]:
        d = row["during"]
        lines.append(
            f"outage {row['protocol']}/{row['fault']}: during p50 {d['p50_s']} s, "
            f"p99 {d['p99_s']} s, errors {d['errors']}; back to local "
            f"{row['back_after_s']} s after recovery; local share 2 s after: "
            f"{row['local_after_2s']}; probes {row['probes_during']}"
        )
    return lines


def local_model_lines(result: dict[str, Any]) -> list[str]:
    """The embedded model's start-up, speed, valid shares and Route's overhead over it."""
    if "error" in result:
        return [f"local-model: {result['error']}"]
    s = result["summary"]
    return [
        f"embedded model: healthy {s['embedded_spawn_to_healthy_s']:.2f} s after spawn, "
        f"serve to SERVING {s['serve_to_serving_s']:.2f} s; decode "
        f"{s['decode_tokens_per_s']:.1f} tok/s",
        f"embedded model: {s['native_valid']}/{s['tasks']} tasks valid with native "
        f"structured output, {s['prompted_valid']}/{s['tasks']} prompt-only; Route over "
        f"direct p50 {s['route_minus_direct_p50_ms']:+.1f} ms "
        f"({s['route_over_direct_p50_ratio']:.2f}x)",
    ]


LINES = {"outage": outage_lines, "local-model": local_model_lines}
