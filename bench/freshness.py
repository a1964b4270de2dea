"""Which code a bench result describes, and whether the code has changed since.

``bench/run.py`` stores ``code_record()`` in each result: the commit of the tree it measured,
whether that tree had uncommitted changes, and a digest of the files that decide what is
measured (``MEASURED``). ``python -m bench.freshness [RESULT.json ...]`` (default: every
result in ``bench/results/``) says of each one:

- ``current``: the measured files are as they were when it was measured;
- ``stale``: they have changed since (it names how many, and the commit it measured);
- ``unknown``: it was written before results recorded their code.

It exits 1 when a result named on the command line is stale or unknown.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ("server/llm_router_server", "client/llm_router", "proto", "bench", "pyproject.toml")
"""What decides a bench result: the server, the client and protos it is called with, the
bench itself and the pinned dependencies."""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout


def measured_files(root: Path) -> list[str]:
    """The files under ``MEASURED`` that git tracks or would track, less the results and
    the pages about them."""
    listed = _git(root, "ls-files", "--cached", "--others", "--exclude-standard", *MEASURED)
    return sorted(
        path
        for path in listed.splitlines()
        if not path.startswith(("bench/results/", "bench/out/"))
        and not path.endswith(".md")
        and (root / path).is_file()
    )


def digest(root: Path) -> str:
    """SHA-256 over the measured files' paths and contents, as they are on disk now."""
    h = hashlib.sha256()
    for path in measured_files(root):
        h.update(path.encode() + b"\0" + (root / path).read_bytes() + b"\0")
    return h.hexdigest()


def code_record(root: Path = ROOT) -> dict[str, Any]:
    """What a result stores about the code it measured."""
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        dirty = bool(_git(root, "status", "--porcelain", "--", *MEASURED).strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "", True
    return {"commit": commit, "dirty": dirty, "digest": digest(root)}


def status(result: Any, root: Path = ROOT) -> tuple[str, str]:
    """``(current | stale | unknown, a line saying why)`` for a result as loaded."""
    code = result.get("code") if isinstance(result, dict) else None
    if not isinstance(code, dict) or "digest" not in code:
        return "unknown", "written before results recorded the code they measured"
    commit = str(code.get("commit", ""))[:12] or "?"
    dirty = " plus uncommitted changes" if code.get("dirty") else ""
    if code["digest"] == digest(root):
        return "current", f"measured the code as it is now (commit {commit}{dirty})"
    changed = "?"
    if code.get("commit"):
        try:
            names = _git(root, "diff", "--name-only", str(code["commit"]), "--", *MEASURED)
            measured = set(measured_files(root))
            changed = str(len([n for n in names.splitlines() if n in measured]))
        except (OSError, subprocess.CalledProcessError):
            pass
    return "stale", f"measured commit {commit}{dirty}; {changed} measured file(s) changed since"


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "bench" / "results").glob("*.json"))
    worst = 0
    for path in paths:
        verdict, why = status(json.loads(path.read_text()))
        print(f"{path.name}: {verdict}: {why}")
        worst = max(worst, int(verdict != "current"))
    return worst if argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
