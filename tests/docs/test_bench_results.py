"""The performance page says which code its figures describe, and says so when the code has
changed since they were measured (``bench/freshness.py``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench.freshness import code_record, status

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "performance.md"


def result_of_record() -> tuple[Path, str]:
    """The result the page's "Result of record" section cites, and that section's text."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Result of record", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"\((\.\./bench/results/[^)\s]+\.json)\)", section)
    assert match, "the Result of record section links no bench/results/*.json"
    return (PAGE.parent / match.group(1)).resolve(), section


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_result_of_record_is_marked_with_the_code_it_describes() -> None:
    """current: the page names the commit measured; stale: it says **Stale**; unknown (a
    result from before results recorded their code): it says it recorded no commit."""
    path, section = result_of_record()
    verdict, why = status(json.loads(path.read_text()))
    if verdict == "current":
        commit = json.loads(path.read_text())["code"]["commit"][:7]
        assert commit in section, f"{path.name} is current ({why}): name commit {commit}"
    elif verdict == "stale":
        assert "**Stale**" in section, f"{path.name} is stale ({why}): mark it **Stale**"
    else:
        assert "recorded no commit" in section, f"{path.name}: say it recorded no commit"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_change_to_measured_code_makes_a_result_stale(tmp_path: Path) -> None:
    """The digest follows the measured files' contents: a result recorded now is current,
    and stale once a measured file changes."""
    import subprocess

    repo = tmp_path / "repo"
    (repo / "server" / "llm_router_server").mkdir(parents=True)
    module = repo / "server" / "llm_router_server" / "x.py"
    module.write_text("A = 1\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    result = {"code": code_record(repo)}
    assert status(result, repo)[0] == "current"
    module.write_text("A = 2\n")
    assert status(result, repo)[0] == "stale"
    assert status({"rows": []}, repo)[0] == "unknown"
